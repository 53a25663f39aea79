#include "data/tokenizers/split.h"

#include <algorithm>

namespace foldmoe::data::tok {

std::vector<Span> spans_from_matches(std::string_view text, const std::vector<std::pair<size_t, size_t>>& matches) {
  if (text.empty()) return {{0, 0, false}};
  std::vector<Span> out;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    if (prev != b) out.push_back({prev, b, false});
    out.push_back({b, e, true});
    prev = e;
  }
  if (prev != text.size()) out.push_back({prev, text.size(), false});
  return out;
}

std::vector<std::pair<size_t, size_t>> apply_behavior(std::vector<Span> spans, SplitBehavior behavior, bool invert) {
  if (invert)
    for (Span& s : spans) s.match = !s.match;
  std::vector<Span> kept;  // `match` now means "remove"
  bool previous_match = false;
  switch (behavior) {
    case SplitBehavior::Isolated:
      for (Span s : spans) kept.push_back({s.begin, s.end, false});
      break;
    case SplitBehavior::Removed:
      kept = spans;
      break;
    case SplitBehavior::Contiguous:
      for (const Span& s : spans) {
        if (s.match == previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithPrevious:
      for (const Span& s : spans) {
        if (s.match && !previous_match && !kept.empty())
          kept.back().end = s.end;
        else
          kept.push_back({s.begin, s.end, false});
        previous_match = s.match;
      }
      break;
    case SplitBehavior::MergedWithNext:
      for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
        if (it->match && !previous_match && !kept.empty())
          kept.back().begin = it->begin;
        else
          kept.push_back({it->begin, it->end, false});
        previous_match = it->match;
      }
      std::reverse(kept.begin(), kept.end());
      break;
  }
  std::vector<std::pair<size_t, size_t>> out;
  for (const Span& s : kept)
    if (!s.match && s.end > s.begin) out.emplace_back(s.begin, s.end);
  return out;
}

}  // namespace foldmoe::data::tok
