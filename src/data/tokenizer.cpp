#include "data/tokenizer.h"

#include "core/check.h"

namespace foldmoe::data {

namespace {
// Printable characters are shown as-is; others by code so the message itself stays printable.
std::string describe_char(char c) {
  const unsigned char u = static_cast<unsigned char>(c);
  if (u >= 0x20 && u < 0x7f) return fmt::format("'{}' (0x{:02x})", c, u);
  return fmt::format("byte 0x{:02x}", u);
}
}  // namespace

int32_t CharTokenizer::char_to_id(char c) {
  if (c == '\n') return kEos;
  if (c >= kLowChar && c <= kHighChar) return kFirstChar + (c - kLowChar);
  user_error("character {} is not in the foldmoe character vocabulary (printable ASCII ' '..'~' and '\\n'); "
             "remove or replace it in the input text",
             describe_char(c));
}

char CharTokenizer::id_to_char(int32_t id) {
  if (id == kEos) return '\n';
  if (id >= kFirstChar && id < kVocabSize) return char(kLowChar + (id - kFirstChar));
  user_error("token id {} has no character (vocabulary: 0 <pad>, 1 <bos>, 2 <eos>, 3..{} printable ASCII)", id,
             kVocabSize - 1);
}

std::vector<int32_t> CharTokenizer::encode(std::string_view text) {
  std::vector<int32_t> ids;
  ids.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c != '\n' && (c < kLowChar || c > kHighChar))
      user_error("character {} at position {} (after \"{}\") is not in the foldmoe character vocabulary "
                 "(printable ASCII ' '..'~' and '\\n'); remove or replace it",
                 describe_char(c), i, text.substr(i > 40 ? i - 40 : 0, i > 40 ? 40 : i));
    ids.push_back(char_to_id(c));
  }
  return ids;
}

std::string CharTokenizer::decode(std::span<const int32_t> ids) {
  std::string text;
  text.reserve(ids.size());
  for (int32_t id : ids) {
    if (id == kPad || id == kBos) continue;
    if (id < 0 || id >= kVocabSize)
      user_error("token id {} is outside the vocabulary [0, {}); the ids do not come from this tokenizer", id,
                 kVocabSize);
    text.push_back(id_to_char(id));
  }
  return text;
}

std::string CharTokenizer::token_name(int32_t id) {
  switch (id) {
    case kPad: return "<pad>";
    case kBos: return "<bos>";
    case kEos: return "<eos>";
    default:
      if (id >= kFirstChar && id < kVocabSize) return std::string(1, id_to_char(id));
      return fmt::format("<invalid:{}>", id);
  }
}

}  // namespace foldmoe::data
