// Chat templates (docs/chat-templates.md): turning a list of chat messages into the prompt text a
// chat model was trained on. A template is either a named built-in (`chatml`, `llama3`, `plain` =
// the text as is) or a model's own jinja2 template (`model`: the `chat_template` of the tokenizer
// directory's tokenizer_config.json, or its chat_template.jinja), rendered by foldmoe's
// implementation of the jinja2 subset real templates use, byte-for-byte as HF renders it.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data {

class Tokenizer;

namespace chat {
struct Template;
}

struct ChatRenderOptions {
  bool add_generation_prompt = true;
  // bos_token / eos_token as HF passes them (absent = undefined in the template).
  std::optional<std::string> bos_token, eos_token;
  std::optional<bool> enable_thinking;  // passed only when set (Qwen3-style templates read it)
  nlohmann::ordered_json tools;         // JSON tool schemas (null = none, as RL uses)
};

class ChatTemplate {
 public:
  // The names `rl.chat_template` and `foldmoe tokenize --chat-template` accept besides a file.
  static const std::vector<std::string>& names();  // model, chatml, llama3, plain

  // Parses jinja2 source; UserError K9 (construct, line, column, fix) if it is outside the subset.
  static ChatTemplate from_source(std::string_view source, const std::string& origin);
  // A named template. `tokenizer_spec` is the tokenizer's spec (for `model`): UserError K10 if it
  // names no directory or tokenizer.json with a chat template beside it.
  static ChatTemplate named(const std::string& name, const std::string& tokenizer_spec);

  ChatTemplate(ChatTemplate&&) noexcept;
  ChatTemplate& operator=(ChatTemplate&&) noexcept;
  ~ChatTemplate();

  bool is_plain() const { return !tmpl_; }
  const std::string& origin() const { return origin_; }
  // The end-of-turn marker of a named template ("<|im_end|>", "<|eot_id|>"; empty otherwise).
  const std::string& end_of_turn() const { return end_of_turn_; }

  // `messages`: a JSON array of {"role": ..., "content": ...} objects (other keys are passed on).
  // Plain: the contents joined as they are. UserError K9 if the template fails on them.
  std::string render(const nlohmann::ordered_json& messages, const ChatRenderOptions& o) const;
  // One user turn: render([{"role": "user", "content": text}]).
  std::string render_user_prompt(std::string_view text, const ChatRenderOptions& o) const;

 private:
  ChatTemplate() = default;
  std::unique_ptr<chat::Template> tmpl_;  // null = plain
  std::string origin_ = "plain";
  std::string end_of_turn_;
};

// bos_token/eos_token of `tokenizer` as HF's apply_chat_template passes them.
ChatRenderOptions chat_options_for(const Tokenizer& tokenizer, bool add_generation_prompt);

// The ids that end a chat response: the tokenizer's eos, the ids of generation_config.json's and
// tokenizer_config.json's `eos_token_id` (an id or a list) in the tokenizer's directory, and the
// template's end-of-turn marker where the tokenizer has it as one token. Ascending, unique.
std::vector<int32_t> chat_stop_ids(const Tokenizer& tokenizer, const std::string& tokenizer_spec,
                                   const ChatTemplate& tmpl);

}  // namespace foldmoe::data
