#include "data/tokenizers/unicode_norm.h"

#include <unicode/unorm2.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include <vector>

#include "core/check.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {
namespace {

bool is_ascii(std::string_view s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

std::u16string to_utf16(std::string_view s) {
  UErrorCode st = U_ZERO_ERROR;
  int32_t n = 0;
  u_strFromUTF8(nullptr, 0, &n, s.data(), int32_t(s.size()), &st);
  std::u16string out(size_t(n), u'\0');
  st = U_ZERO_ERROR;
  u_strFromUTF8(reinterpret_cast<UChar*>(out.data()), n, &n, s.data(), int32_t(s.size()), &st);
  FOLDMOE_CHECK(U_SUCCESS(st), "u_strFromUTF8: {}", u_errorName(st));
  return out;
}

std::string to_utf8(const std::u16string& s) {
  UErrorCode st = U_ZERO_ERROR;
  int32_t n = 0;
  u_strToUTF8(nullptr, 0, &n, reinterpret_cast<const UChar*>(s.data()), int32_t(s.size()), &st);
  std::string out(size_t(n), '\0');
  st = U_ZERO_ERROR;
  u_strToUTF8(out.data(), n, &n, reinterpret_cast<const UChar*>(s.data()), int32_t(s.size()), &st);
  FOLDMOE_CHECK(U_SUCCESS(st), "u_strToUTF8: {}", u_errorName(st));
  return out;
}

const UNormalizer2* instance(NormalForm form) {
  UErrorCode st = U_ZERO_ERROR;
  const UNormalizer2* n = nullptr;
  switch (form) {
    case NormalForm::NFC:
      n = unorm2_getNFCInstance(&st);
      break;
    case NormalForm::NFD:
      n = unorm2_getNFDInstance(&st);
      break;
    case NormalForm::NFKC:
      n = unorm2_getNFKCInstance(&st);
      break;
    case NormalForm::NFKD:
      n = unorm2_getNFKDInstance(&st);
      break;
  }
  FOLDMOE_CHECK(U_SUCCESS(st) && n, "ICU normalizer: {}", u_errorName(st));
  return n;
}

}  // namespace

std::string unicode_normalize(std::string_view text, NormalForm form) {
  if (is_ascii(text)) return std::string(text);  // ASCII is invariant under every form
  const UNormalizer2* n = instance(form);
  const std::u16string in = to_utf16(text);
  UErrorCode st = U_ZERO_ERROR;
  const int32_t len =
      unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()), nullptr, 0, &st);
  std::u16string out(size_t(len), u'\0');
  st = U_ZERO_ERROR;
  unorm2_normalize(n, reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()),
                   reinterpret_cast<UChar*>(out.data()), len, &st);
  FOLDMOE_CHECK(U_SUCCESS(st), "unorm2_normalize: {}", u_errorName(st));
  return to_utf8(out);
}

std::string unicode_lowercase(std::string_view text) {
  // Character by character, as Rust's char::to_lowercase (full mappings such as U+0130 -> "i̇",
  // but no context: a final capital sigma becomes σ, not ς).
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      out += (c >= 'A' && c <= 'Z') ? char(c - 'A' + 'a') : char(c);
      ++i;
      continue;
    }
    const size_t b = i;
    const char32_t cp = next_code_point(text, i);
    UChar in[2];
    int32_t in_len = 0;
    U16_APPEND_UNSAFE(in, in_len, UChar32(cp));
    UChar low[8];
    UErrorCode st = U_ZERO_ERROR;
    const int32_t n = u_strToLower(low, 8, in, in_len, "", &st);
    if (U_FAILURE(st)) {
      out.append(text.substr(b, i - b));
      continue;
    }
    for (int32_t k = 0; k < n;) {
      UChar32 u;
      U16_NEXT(low, k, n, u);
      append_utf8(out, char32_t(u));
    }
  }
  return out;
}

}  // namespace foldmoe::data::tok
