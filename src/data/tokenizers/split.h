// HF tokenizers' way of cutting a string at pattern matches (NormalizedString::split): the string
// is covered by [begin, end) spans, each flagged as a match or not, and a delimiter behaviour says
// what becomes of the matches. Shared by the Split, Metaspace, Digits and ByteLevel pre-tokenizers.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace foldmoe::data::tok {

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

struct Span {
  size_t begin, end;
  bool match;
};

// Spans covering `text` from a list of non-overlapping matches (one non-match span for an empty text).
std::vector<Span> spans_from_matches(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches);
// Spans where each character satisfying `pred` is its own match.
template <typename Pred>
std::vector<Span> spans_from_chars(std::string_view text, Pred pred);

// The pieces `behavior` keeps, as [begin, end) ranges; empty pieces are dropped.
std::vector<std::pair<size_t, size_t>> apply_behavior(std::vector<Span> spans, SplitBehavior behavior, bool invert);

}  // namespace foldmoe::data::tok

#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {

template <typename Pred>
std::vector<Span> spans_from_chars(std::string_view text, Pred pred) {
  std::vector<Span> out;
  size_t last = 0, i = 0;
  while (i < text.size()) {
    const size_t b = i;
    const char32_t cp = next_code_point(text, i);
    if (pred(cp)) {
      if (last < b) out.push_back({last, b, false});
      out.push_back({b, i, true});
      last = i;
    }
  }
  if (last < text.size()) out.push_back({last, text.size(), false});
  if (text.empty()) out.push_back({0, 0, false});
  return out;
}

}  // namespace foldmoe::data::tok
