#include "data/tokenizers/added_tokens.h"

#include <unicode/uchar.h>

#include <algorithm>

#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {
namespace {

// \w of Rust's regex: Alphabetic, marks, decimal digits, connector punctuation, Join_Control.
bool is_word_char(char32_t c) {
  if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
  const UChar32 u = UChar32(c);
  if (u_hasBinaryProperty(u, UCHAR_ALPHABETIC) || u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL)) return true;
  const int8_t t = u_charType(u);
  return t == U_NON_SPACING_MARK || t == U_ENCLOSING_MARK || t == U_COMBINING_SPACING_MARK ||
         t == U_DECIMAL_DIGIT_NUMBER || t == U_CONNECTOR_PUNCTUATION;
}

char32_t last_code_point(std::string_view s) {
  size_t k = s.size() - 1;
  while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
  return next_code_point(s, k);
}

}  // namespace

AddedTokenMatcher::AddedTokenMatcher(std::vector<AddedToken> tokens, std::vector<std::string> patterns)
    : tokens_(std::move(tokens)), patterns_(std::move(patterns)), by_first_byte_(256) {
  for (uint32_t i = 0; i < tokens_.size(); ++i)
    if (!patterns_[i].empty()) by_first_byte_[static_cast<unsigned char>(patterns_[i][0])].push_back(i);
  for (auto& list : by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](uint32_t a, uint32_t b) { return patterns_[a].size() > patterns_[b].size(); });
}

std::vector<Segment> AddedTokenMatcher::split(std::string_view s) const {
  std::vector<Segment> out;
  if (s.empty()) return out;
  size_t start_offset = 0, pos = 0;
  while (pos < s.size()) {
    const auto& candidates = by_first_byte_[static_cast<unsigned char>(s[pos])];
    const uint32_t* found = nullptr;
    for (const uint32_t& c : candidates)
      if (s.compare(pos, patterns_[c].size(), patterns_[c]) == 0) {
        found = &c;
        break;
      }
    if (!found) {
      ++pos;
      continue;
    }
    const AddedToken& t = tokens_[*found];
    size_t start = pos, stop = pos + patterns_[*found].size();
    pos = stop;  // the search goes on after this match, whether it is kept or not
    if (t.single_word) {
      const bool start_space = start == 0 || !is_word_char(last_code_point(s.substr(0, start)));
      size_t k = stop;
      const bool stop_space = stop == s.size() || !is_word_char(next_code_point(s, k));
      if (!start_space || !stop_space) continue;
    }
    if (t.lstrip) {
      size_t b = start;
      while (b > 0) {
        size_t k = b - 1;
        while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t i = k;
        if (!is_unicode_whitespace(next_code_point(s, i))) break;
        b = k;
      }
      start = std::max(b, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        size_t i = stop;
        if (!is_unicode_whitespace(next_code_point(s, i))) break;
        stop = i;
      }
      pos = stop;
    }
    if (start_offset < start) out.push_back({start_offset, start, std::nullopt});
    out.push_back({start, stop, t.id});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({start_offset, s.size(), std::nullopt});
  return out;
}

}  // namespace foldmoe::data::tok
