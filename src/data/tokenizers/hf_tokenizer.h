// A HF tokenizers `tokenizer.json` behind the Tokenizer seam, implemented here (no Rust, no
// Python): the BPE model with the normalizers, pre-tokenizers, decoders and added tokens that the
// GPT-2, Llama-3, Qwen2/2.5/3 byte-level files and the Llama-2 / Mistral SentencePiece-style files
// use (docs/tokenizers.md). encode() equals HF's `encode(text, add_special_tokens=False).ids` and
// decode() equals `decode(ids, skip_special_tokens=False)`.
#pragma once

#include <memory>
#include <string>

#include "data/text_tokenizer.h"

namespace foldmoe::data {

// `json_path`: the tokenizer.json. `config_path`: a tokenizer_config.json naming bos/eos/pad, or
// empty. UserError (rules K3..K8) naming the file and the JSON path of anything broken or unsupported.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path, const std::string& config_path);

}  // namespace foldmoe::data
