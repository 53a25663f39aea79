#include "data/chat_template/chat_template.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/check.h"
#include "data/chat_template/evaluator.h"
#include "data/chat_template/parser.h"
#include "data/text_tokenizer.h"

namespace foldmoe::data {

namespace {

namespace fs = std::filesystem;

// The classic ChatML layout (Qwen, OLMoE-Instruct, DeepSeek-style ChatML models): every turn as
// <|im_start|>role\ncontent<|im_end|>\n, then the opened assistant turn.
constexpr std::string_view kChatml =
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

// The Llama-3 instruct layout: bos, then per turn a role header, the trimmed content and <|eot_id|>.
constexpr std::string_view kLlama3 =
    "{%- for message in messages %}"
    "{%- if loop.first %}{{- bos_token }}{%- endif %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
    "'<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) user_error("chat template error K10: cannot read {}\n  fix: check the file's permissions", p.string());
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The directory a tokenizer spec's files live in (none for "char").
std::optional<fs::path> tokenizer_dir(const std::string& spec) {
  if (spec.empty() || spec == "char") return std::nullopt;
  const fs::path p(spec);
  std::error_code ec;
  if (fs::is_directory(p, ec)) return p;
  return p.has_parent_path() ? p.parent_path() : fs::path(".");
}

std::optional<nlohmann::json> read_json_beside(const fs::path& dir, const char* name) {
  const fs::path p = dir / name;
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) return std::nullopt;
  try {
    return nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::parse_error& e) {
    user_error("tokenizer error K4: {} is not valid JSON ({})\n  fix: repair or remove the file", p.string(), e.what());
  }
}

}  // namespace

ChatTemplate::ChatTemplate(ChatTemplate&&) noexcept = default;
ChatTemplate& ChatTemplate::operator=(ChatTemplate&&) noexcept = default;
ChatTemplate::~ChatTemplate() = default;

const std::vector<std::string>& ChatTemplate::names() {
  static const std::vector<std::string> n = {"model", "chatml", "llama3", "plain"};
  return n;
}

ChatTemplate ChatTemplate::from_source(std::string_view source, const std::string& origin) {
  ChatTemplate t;
  t.origin_ = origin;
  t.tmpl_ = std::make_unique<chat::Template>(chat::parse_template(source, origin));
  return t;
}

ChatTemplate ChatTemplate::named(const std::string& name, const std::string& tokenizer_spec) {
  if (name == "plain") return ChatTemplate();
  if (name == "chatml") {
    ChatTemplate t = from_source(kChatml, "template \"chatml\"");
    t.end_of_turn_ = "<|im_end|>";
    return t;
  }
  if (name == "llama3") {
    ChatTemplate t = from_source(kLlama3, "template \"llama3\"");
    t.end_of_turn_ = "<|eot_id|>";
    return t;
  }
  if (name != "model")
    user_error("chat template error K10: unknown chat template \"{}\"\n  fix: use model, chatml, llama3 or plain",
               name);
  const std::optional<fs::path> dir = tokenizer_dir(tokenizer_spec);
  const std::string fix =
      "use a HF tokenizer directory whose tokenizer_config.json has a \"chat_template\" (or a chat_template.jinja), "
      "or pick a named template (chatml, llama3, plain)";
  if (!dir)
    user_error(
        "chat template error K10: chat template \"model\" needs a tokenizer directory, but the tokenizer is \"{}\"\n"
        "  fix: {}",
        tokenizer_spec, fix);
  const fs::path config = *dir / "tokenizer_config.json";
  if (const auto j = read_json_beside(*dir, "tokenizer_config.json"); j && j->contains("chat_template")) {
    const nlohmann::json& ct = j->at("chat_template");
    if (ct.is_string()) return from_source(ct.get<std::string>(), config.string() + " chat_template");
    if (ct.is_array())
      for (const auto& e : ct)
        if (e.is_object() && e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
          return from_source(e["template"].get<std::string>(), config.string() + " chat_template[default]");
    user_error(
        "chat template error K10: {}: \"chat_template\" is neither a string nor a list with a \"default\" "
        "entry\n  fix: {}",
        config.string(), fix);
  }
  const fs::path jinja = *dir / "chat_template.jinja";
  std::error_code ec;
  if (fs::is_regular_file(jinja, ec)) return from_source(read_file(jinja), jinja.string());
  user_error("chat template error K10: {} has no \"chat_template\" (and there is no {})\n  fix: {}", config.string(),
             jinja.string(), fix);
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, const ChatRenderOptions& o) const {
  if (!messages.is_array())
    user_error("chat template error K9: {}: the messages must be a JSON array of {{\"role\", \"content\"}} objects",
               origin_);
  if (!tmpl_) {
    std::string out;
    for (const auto& m : messages)
      if (m.is_object() && m.contains("content") && m["content"].is_string()) out += m["content"].get<std::string>();
    return out;
  }
  chat::Dict vars;
  vars.set("messages", chat::from_json(messages));
  vars.set("add_generation_prompt", chat::Value::boolean(o.add_generation_prompt));
  vars.set("tools", chat::from_json(o.tools));
  vars.set("documents", chat::Value::none());
  if (o.bos_token) vars.set("bos_token", chat::Value::string(*o.bos_token));
  if (o.eos_token) vars.set("eos_token", chat::Value::string(*o.eos_token));
  if (o.enable_thinking) vars.set("enable_thinking", chat::Value::boolean(*o.enable_thinking));
  return chat::render_template(*tmpl_, vars);
}

std::string ChatTemplate::render_user_prompt(std::string_view text, const ChatRenderOptions& o) const {
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  messages.push_back({{"role", "user"}, {"content", std::string(text)}});
  return render(messages, o);
}

ChatRenderOptions chat_options_for(const Tokenizer& tokenizer, bool add_generation_prompt) {
  ChatRenderOptions o;
  o.add_generation_prompt = add_generation_prompt;
  if (tokenizer.bos_id()) o.bos_token = tokenizer.token_name(*tokenizer.bos_id());
  if (tokenizer.eos_id()) o.eos_token = tokenizer.token_name(*tokenizer.eos_id());
  return o;
}

std::vector<int32_t> chat_stop_ids(const Tokenizer& tokenizer, const std::string& tokenizer_spec,
                                   const ChatTemplate& tmpl) {
  std::vector<int32_t> ids;
  if (tokenizer.eos_id()) ids.push_back(*tokenizer.eos_id());
  if (const std::optional<fs::path> dir = tokenizer_dir(tokenizer_spec)) {
    for (const char* file : {"generation_config.json", "tokenizer_config.json"}) {
      const auto j = read_json_beside(*dir, file);
      if (!j || !j->contains("eos_token_id")) continue;
      const nlohmann::json& e = j->at("eos_token_id");
      const auto take = [&](const nlohmann::json& x) {
        if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tokenizer.vocab_size())
          user_error(
              "tokenizer error K8: {}: eos_token_id {} is not an id of the tokenizer ({} ids)\n  fix: correct "
              "eos_token_id",
              (*dir / file).string(), x.dump(), tokenizer.vocab_size());
        ids.push_back(int32_t(x.get<int64_t>()));
      };
      if (e.is_array())
        for (const auto& x : e) take(x);
      else if (!e.is_null())
        take(e);
    }
  }
  if (!tmpl.end_of_turn().empty()) {
    const std::vector<int32_t> t = tokenizer.encode(tmpl.end_of_turn());
    if (t.size() == 1) ids.push_back(t[0]);
  }
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  return ids;
}

}  // namespace foldmoe::data
