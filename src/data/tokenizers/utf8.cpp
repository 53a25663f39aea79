#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {
namespace {

// Length and validity of the well-formed sequence at s[i] (Unicode table 3-7); 0 when ill-formed,
// with `bad` the length of the maximal subpart to replace by one U+FFFD.
size_t well_formed_len(std::string_view s, size_t i, size_t& bad) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const size_t left = s.size() - i;
  const unsigned char c = b(0);
  bad = 1;
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  for (size_t k = 1; k < n; ++k) {
    if (k >= left) {
      bad = k;
      return 0;
    }
    const unsigned char ck = b(k);
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (ck < l || ck > h) {
      bad = k;
      return 0;
    }
  }
  return n;
}

}  // namespace

size_t utf8_char_len(std::string_view s, size_t i) {
  size_t bad;
  const size_t n = well_formed_len(s, i, bad);
  return n ? n : 1;
}

char32_t next_code_point(std::string_view s, size_t& i) {
  size_t bad;
  const size_t n = well_formed_len(s, i, bad);
  if (n == 0) {
    i += bad;
    return 0xFFFD;
  }
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  char32_t cp;
  if (n == 1)
    cp = b(0);
  else if (n == 2)
    cp = (char32_t(b(0) & 0x1F) << 6) | (b(1) & 0x3F);
  else if (n == 3)
    cp = (char32_t(b(0) & 0x0F) << 12) | (char32_t(b(1) & 0x3F) << 6) | (b(2) & 0x3F);
  else
    cp = (char32_t(b(0) & 0x07) << 18) | (char32_t(b(1) & 0x3F) << 12) | (char32_t(b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

std::string utf8_lossy(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t bad;
    const size_t n = well_formed_len(bytes, i, bad);
    if (n) {
      out.append(bytes.substr(i, n));
      i += n;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

bool is_valid_utf8(std::string_view bytes) {
  for (size_t i = 0; i < bytes.size();) {
    size_t bad;
    const size_t n = well_formed_len(bytes, i, bad);
    if (!n) return false;
    i += n;
  }
  return true;
}

ByteLevelTable::ByteLevelTable() {
  code_point_to_byte.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int cp = printable ? b : next++;
    append_utf8(byte_to_utf8[b], char32_t(cp));
    code_point_to_byte[cp] = b;
  }
}

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table;
  return table;
}

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

}  // namespace foldmoe::data::tok
