// Unicode normalization forms and lowercasing through ICU, for the NFC/NFKC/NFD/NFKD and Lowercase
// normalizers of tokenizer.json (Qwen2/Qwen3 files use NFC).
#pragma once

#include <string>
#include <string_view>

namespace foldmoe::data::tok {

enum class NormalForm { NFC, NFD, NFKC, NFKD };

// `text` must be valid UTF-8.
std::string unicode_normalize(std::string_view text, NormalForm form);
std::string unicode_lowercase(std::string_view text);

}  // namespace foldmoe::data::tok
