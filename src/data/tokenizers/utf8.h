// UTF-8 helpers shared by the tokenizer.json pieces: code point iteration, the lossy conversion that
// HF's decoders apply (Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes one
// U+FFFD) and the GPT-2 byte <-> printable-character table of the byte-level tokenizers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace foldmoe::data::tok {

// Byte length of the UTF-8 sequence starting at s[i] (1 for an invalid lead byte; never past the end).
size_t utf8_char_len(std::string_view s, size_t i);
// The code point starting at s[i] (U+FFFD for an invalid sequence); advances i.
char32_t next_code_point(std::string_view s, size_t& i);
void append_utf8(std::string& out, char32_t cp);
// `bytes` as valid UTF-8: each maximal invalid subsequence is replaced by U+FFFD.
std::string utf8_lossy(std::string_view bytes);
bool is_valid_utf8(std::string_view bytes);

// GPT-2's bytes_to_unicode(): every byte maps to a printable code point (the printable Latin-1
// bytes to themselves, the others to U+0100 upwards).
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_utf8;  // the UTF-8 of each byte's code point
  std::array<int, 512> code_point_to_byte;    // -1 where the code point is no byte's image
  ByteLevelTable();
};
const ByteLevelTable& byte_level_table();

// Unicode White_Space, as Rust's char::is_whitespace.
bool is_unicode_whitespace(char32_t cp);

}  // namespace foldmoe::data::tok
