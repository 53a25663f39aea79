// `foldmoe tokenize`: runs any tokenizer load_tokenizer accepts on text from the command line or a
// file, printing one JSON value per input line (JSON Lines), so that tests and users can compare it
// with HF tokenizers or SentencePiece. Needs no MPI and no config.
//
//   foldmoe tokenize --tokenizer T --text "hello"            -> [ids]
//   foldmoe tokenize --tokenizer T --input FILE              -> one [ids] per line of FILE
//   foldmoe tokenize --tokenizer T --input FILE --json       -> FILE is a JSON array of strings
//   foldmoe tokenize --tokenizer T --decode --json --input F -> F is a JSON array of id lists; prints strings
//   foldmoe tokenize --tokenizer T --info                    -> vocab size, bos/eos/pad/unk ids
//   foldmoe tokenize --tokenizer T --input FILE --stats      -> encodes every line, prints counts and time
//   foldmoe tokenize --tokenizer T --chat-template C --messages FILE
//                                                            -> renders each conversation of FILE with the
//                                                               chat template C and encodes it (see
//                                                               docs/chat-templates.md)
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/commands.h"
#include "core/check.h"
#include "data/chat_template/chat_template.h"
#include "data/text_tokenizer.h"

namespace foldmoe::cli {
namespace {

struct TokenizeOptions {
  std::string tokenizer, text, input, chat_template, messages;
  bool decode = false, json = false, info = false, stats = false;
};

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("cannot read --input file '{}'\n  fix: pass an existing, readable file", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

nlohmann::json read_json_list(const std::string& path) {
  nlohmann::json j = nlohmann::json::parse(read_file(path), nullptr, false);
  if (!j.is_array()) user_error("--input '{}' is not a JSON array (--json expects one)\n  fix: write [..., ...]", path);
  return j;
}

void print_line(const nlohmann::json& j) {
  const std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fputc('\n', stdout);
}

nlohmann::json optional_id(std::optional<int32_t> id) {
  return id ? nlohmann::json(*id) : nlohmann::json(nullptr);
}

// A named template, or a file holding jinja2 source.
data::ChatTemplate load_chat_template(const std::string& spec, const std::string& tokenizer) {
  const auto& names = data::ChatTemplate::names();
  if (std::find(names.begin(), names.end(), spec) != names.end()) return data::ChatTemplate::named(spec, tokenizer);
  std::ifstream in(spec, std::ios::binary);
  if (!in)
    user_error(
        "--chat-template '{}' is neither a template name nor a readable file\n  fix: use model, chatml, llama3, "
        "plain, or a file of jinja2 source",
        spec);
  return data::ChatTemplate::from_source(read_file(spec), spec);
}

// Each entry of the --messages file: a list of messages, or {"messages": [...],
// "add_generation_prompt": bool, "enable_thinking": bool, "tools": [...], "bos_token": str|null,
// "eos_token": str|null}.
// Prints {"text", "ids"} per entry, or {"error"} where the template refuses the messages.
int render_chats(const TokenizeOptions& o, const data::Tokenizer& tok) {
  const data::ChatTemplate tmpl = load_chat_template(o.chat_template, o.tokenizer);
  nlohmann::ordered_json cases = nlohmann::ordered_json::parse(read_file(o.messages), nullptr, false);
  if (!cases.is_array())
    user_error(
        "--messages '{}' is not a JSON array of conversations\n  fix: write [[{{\"role\": \"user\", \"content\": "
        "\"Hi\"}}], ...]",
        o.messages);
  for (const auto& c : cases) {
    data::ChatRenderOptions opt = data::chat_options_for(tok, true);
    nlohmann::ordered_json messages = c;
    if (c.is_object()) {
      messages = c.value("messages", nlohmann::ordered_json::array());
      opt.add_generation_prompt = c.value("add_generation_prompt", true);
      if (c.contains("enable_thinking")) opt.enable_thinking = c["enable_thinking"].get<bool>();
      if (c.contains("tools")) opt.tools = c["tools"];
      for (const char* key : {"bos_token", "eos_token"}) {
        if (!c.contains(key)) continue;
        std::optional<std::string>& slot = std::string(key) == "bos_token" ? opt.bos_token : opt.eos_token;
        slot = c[key].is_string() ? std::optional<std::string>(c[key].get<std::string>()) : std::nullopt;
      }
    }
    try {
      const std::string text = tmpl.render(messages, opt);
      print_line({{"text", text}, {"ids", tok.encode(text)}});
    } catch (const UserError& e) {
      print_line({{"error", e.what()}});
    }
  }
  return 0;
}

int run(const TokenizeOptions& o) {
  const auto tok = data::load_tokenizer(o.tokenizer);
  if (!o.chat_template.empty() || !o.messages.empty()) {
    if (o.chat_template.empty() || o.messages.empty())
      user_error(
          "--chat-template and --messages go together\n  fix: pass both, e.g. --chat-template chatml --messages "
          "chats.json");
    return render_chats(o, *tok);
  }
  if (o.info) {
    print_line({{"describe", tok->describe()},
                {"vocab_size", tok->vocab_size()},
                {"bos_id", optional_id(tok->bos_id())},
                {"eos_id", optional_id(tok->eos_id())},
                {"pad_id", optional_id(tok->pad_id())},
                {"unk_id", optional_id(tok->unk_id())}});
    return 0;
  }
  if (o.text.empty() == o.input.empty())
    user_error(
        "`foldmoe tokenize` needs exactly one of --text and --input (or --info)\n  fix: e.g. `foldmoe tokenize "
        "--tokenizer {} --text \"Hello\"`; see `foldmoe tokenize --help`",
        o.tokenizer);
  if (o.decode) {
    if (!o.json || o.input.empty())
      user_error("--decode reads id lists from a file\n  fix: pass --json --input FILE, FILE a JSON array of id lists");
    for (const auto& ids : read_json_list(o.input)) {
      if (!ids.is_array()) user_error("--input '{}': every entry must be a list of ids", o.input);
      std::vector<int32_t> v;
      for (const auto& id : ids) {
        if (!id.is_number_integer()) user_error("--input '{}': ids must be integers, got {}", o.input, id.dump());
        v.push_back(id.get<int32_t>());
      }
      print_line(tok->decode(v));
    }
    return 0;
  }
  std::vector<std::string> texts;
  if (!o.text.empty()) {
    texts.push_back(o.text);
  } else if (o.json) {
    for (const auto& t : read_json_list(o.input)) {
      if (!t.is_string()) user_error("--input '{}': every entry must be a string", o.input);
      texts.push_back(t.get<std::string>());
    }
  } else {
    texts = split_lines(read_file(o.input));
  }
  if (o.stats) {
    // One thread, every line encoded once, timed without the load and the reading.
    const auto t0 = std::chrono::steady_clock::now();
    size_t tokens = 0, bytes = 0;
    for (const auto& t : texts) {
      tokens += tok->encode(t).size();
      bytes += t.size();
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_line({{"lines", texts.size()}, {"bytes", bytes}, {"tokens", tokens}, {"seconds", s}});
    return 0;
  }
  for (const auto& t : texts) print_line(tok->encode(t));
  return 0;
}

}  // namespace

void register_tokenize(CLI::App& app) {
  CLI::App* sub =
      app.add_subcommand("tokenize", "Encode or decode text with a tokenizer (char, .model, tokenizer.json)");
  auto o = std::make_shared<TokenizeOptions>();
  sub->add_option("--tokenizer", o->tokenizer, "\"char\", a SentencePiece .model, a tokenizer.json or its directory")
      ->required();
  sub->add_option("--text", o->text, "One text to encode");
  sub->add_option("--input", o->input, "A file: one text per line, or with --json a JSON array");
  sub->add_flag("--decode", o->decode, "Decode id lists (with --json --input) instead of encoding");
  sub->add_flag("--json", o->json, "The --input file is a JSON array (of strings, or of id lists with --decode)");
  sub->add_flag("--info", o->info, "Print the vocabulary size and the bos/eos/pad/unk ids");
  sub->add_flag("--stats", o->stats, "Encode every input once and print line, byte and token counts and the time");
  sub->add_option("--chat-template", o->chat_template,
                  "Render --messages with a chat template: model, chatml, llama3, plain, or a jinja2 file");
  sub->add_option("--messages", o->messages,
                  "A JSON array of conversations (message lists, or objects with \"messages\" and options)");
  set_action(sub, [o] { return run(*o); });
}

}  // namespace foldmoe::cli
