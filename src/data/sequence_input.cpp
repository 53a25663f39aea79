#include "data/sequence_input.h"

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "data/data_source.h"

namespace foldmoe::data {
namespace {

// Calls on_line(json, line number) for every non-blank line of `path`.
template <typename F>
SequenceInput read_lines(const std::string& path, const char* expected, F&& on_line) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    user_error("logprobs error E2: the input {} is a directory.\n  fix: give a JSON-lines file ({}).", path, expected);
  std::ifstream f(path);
  if (!f)
    user_error(
        "logprobs error E2: cannot read the input file {} (missing, a directory or not readable).\n  fix: "
        "give an existing JSON-lines file ({}).",
        path, expected);
  SequenceInput in;
  in.path = path;
  std::string text;
  for (int64_t line = 1; std::getline(f, text); ++line) {
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      user_error("logprobs error E3: {}:{} is not valid JSON ({}).\n  fix: write {}.", path, line, e.what(), expected);
    }
    in.sequences.push_back(on_line(j, line));
    in.lines.push_back(line);
  }
  if (f.bad()) user_error("logprobs error E2: reading the input file {} failed.", path);
  if (in.sequences.empty())
    user_error("logprobs error E2: the input file {} holds no sequence.\n  fix: write {}.", path, expected);
  return in;
}

}  // namespace

SequenceInput read_token_sequences(const std::string& path) {
  const char* expected = "one JSON list of token ids per line, e.g. [1, 17, 42]";
  return read_lines(path, expected, [&](const nlohmann::json& j, int64_t line) {
    if (!j.is_array())
      user_error("logprobs error E3: {}:{} is a JSON {}, not a list of token ids.\n  fix: write {}.", path, line,
                 j.type_name(), expected);
    std::vector<int32_t> ids;
    ids.reserve(j.size());
    for (size_t k = 0; k < j.size(); ++k) {
      const nlohmann::json& x = j[k];
      if (!x.is_number_integer())
        user_error("logprobs error E3: {}:{}: entry {} ({}) is not an integer token id.\n  fix: write {}.", path, line,
                   k, x.dump(), expected);
      // Out-of-range ids are kept out of int32 wrap-around: E4 names them with their value.
      const int64_t v = x.is_number_unsigned() && x.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max())
                            ? std::numeric_limits<int64_t>::max()
                            : x.get<int64_t>();
      if (v < 0 || v > std::numeric_limits<int32_t>::max())
        user_error(
            "logprobs error E4: {}:{}: token id {} (entry {}) is outside the vocabulary.\n  fix: use ids in "
            "[0, vocab).",
            path, line, x.dump(), k);
      ids.push_back(int32_t(v));
    }
    return ids;
  });
}

SequenceInput read_text_sequences(const std::string& path, std::optional<int32_t> document_start,
                                  const Tokenizer& tokenizer) {
  const char* expected = "one JSON string per line, or an object {\"text\": \"...\"}";
  return read_lines(path, expected, [&](const nlohmann::json& j, int64_t line) {
    const nlohmann::json* s = &j;
    if (j.is_object()) {
      auto it = j.find("text");
      if (it == j.end())
        user_error("logprobs error E3: {}:{} is an object without a \"text\" key.\n  fix: write {}.", path, line,
                   expected);
      s = &*it;
    }
    if (!s->is_string())
      user_error("logprobs error E3: {}:{} holds a JSON {}, not a string.\n  fix: write {}.", path, line,
                 s->type_name(), expected);
    try {
      return prompt_ids(document_start, tokenizer, s->get<std::string>());
    } catch (const UserError& e) {
      user_error("logprobs error E3: {}:{}: the tokenizer cannot encode the text: {}", path, line, e.what());
    }
  });
}

void check_sequences(const SequenceInput& in, int64_t vocab, int64_t max_len) {
  for (size_t i = 0; i < in.sequences.size(); ++i) {
    const std::vector<int32_t>& s = in.sequences[i];
    const int64_t line = in.lines[i];
    for (size_t k = 0; k < s.size(); ++k)
      if (s[k] < 0 || s[k] >= vocab)
        user_error(
            "logprobs error E4: {}:{}: token id {} (position {}) is outside the model's vocabulary of {} ids.\n"
            "  fix: use ids in [0, {}).",
            in.path, line, s[k], k, vocab, vocab);
    if (s.size() < 2)
      user_error(
          "logprobs error E5: {}:{}: a sequence of {} token{} has no next token to score.\n  fix: give at least "
          "2 tokens per sequence.",
          in.path, line, s.size(), s.size() == 1 ? "" : "s");
    if (int64_t(s.size()) > max_len)
      user_error(
          "logprobs error E6: {}:{}: the sequence has {} tokens, more than the model's context [model] "
          "max_seq_len = {}.\n  fix: cut it to at most {} tokens.",
          in.path, line, s.size(), max_len, max_len);
  }
}

}  // namespace foldmoe::data
