// The `added_tokens` of a tokenizer.json (special tokens such as <|im_start|>, and plain added
// words). They are found in the text before the model sees it and are never split: the leftmost
// match wins, the longest token among those starting there; `single_word` rejects a match inside a
// word, `lstrip`/`rstrip` swallow the whitespace around it (HF's AddedVocabulary::find_matches).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data::tok {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool single_word = false, lstrip = false, rstrip = false, normalized = false, special = false;
};

// A piece of text, or an added token's id.
struct Segment {
  size_t begin, end;             // byte range in the matched text
  std::optional<int32_t> token;  // set when the range is an added token
};

class AddedTokenMatcher {
 public:
  // `patterns[i]` is what is searched for tokens[i] (its content, or its normalized content).
  AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns);
  bool empty() const { return tokens_.empty(); }
  // Splits `text` into text and added-token segments covering it (empty text: no segments).
  std::vector<Segment> split(std::string_view text) const;

 private:
  std::vector<AddedToken> tokens_;
  std::vector<std::string> patterns_;
  std::vector<std::vector<uint32_t>> by_first_byte_;  // token indices, longest pattern first
};

}  // namespace foldmoe::data::tok
