// The normalizer, pre-tokenizer and decoder stages of a tokenizer.json, built from their JSON
// objects. Each stage is a small function; a Sequence composes them. A type foldmoe does not
// implement is refused (rule K5) with the JSON path and the list of supported types.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "data/tokenizers/json_reader.h"

namespace foldmoe::data::tok {

// Text between added tokens, on its way to the model. `at_origin`: the piece starts at byte 0 of
// the caller's text (Metaspace's prepend_scheme "first" prepends only there).
struct Piece {
  std::string text;
  bool at_origin = false;
};

using Normalizer = std::function<std::string(std::string)>;
using PreTokenizer = std::function<void(std::vector<Piece>&)>;
using Decoder = std::function<void(std::vector<std::string>&)>;

// Null JSON gives an empty function (the stage is absent).
Normalizer build_normalizer(const JsonReader& r, const json& j, const std::string& path);
PreTokenizer build_pre_tokenizer(const JsonReader& r, const json& j, const std::string& path);
Decoder build_decoder(const JsonReader& r, const json& j, const std::string& path);

// The byte-level regex of GPT-2 (the ByteLevel pre-tokenizer with use_regex).
extern const char* const kGpt2Regex;

}  // namespace foldmoe::data::tok
