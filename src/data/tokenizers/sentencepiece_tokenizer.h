// A SentencePiece `.model` file (Llama-1/2, Mistral, T5, any `spm_train` output) behind the
// Tokenizer seam, through the SentencePiece library itself: its encode/decode are the reference,
// so nothing is re-implemented here.
#pragma once

#include <memory>
#include <string>

#include "data/text_tokenizer.h"

namespace foldmoe::data {

// UserError (rule K1) naming the file when it cannot be read or is not a SentencePiece model.
std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path);

}  // namespace foldmoe::data
