// A compiled PCRE2 regex in UTF + UCP mode (so \p{L}, \p{N}, \s and \w are Unicode-aware, as in the
// Oniguruma / Rust regexes of HF tokenizers), JIT-compiled when the library supports it. Matching
// runs under a match limit, so a pathological pattern fails with an error instead of hanging.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace foldmoe::data::tok {

class Regex {
 public:
  // Throws std::invalid_argument with PCRE2's message and offset when the pattern does not compile.
  explicit Regex(const std::string& pattern);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every non-overlapping match, left to right, as [begin, end) byte offsets; an empty match
  // advances by one character. Throws std::runtime_error when the match limit is hit.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;
  const std::string& pattern() const { return pattern_; }

 private:
  struct Impl;
  std::string pattern_;
  std::unique_ptr<Impl> impl_;
};

// `text` with every regex metacharacter escaped (a literal String pattern of tokenizer.json).
std::string regex_escape(std::string_view text);

}  // namespace foldmoe::data::tok
