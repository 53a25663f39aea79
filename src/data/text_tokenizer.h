// The one tokenizer seam: everything that turns text into token ids (training data, eval, generate,
// RL prompts, `foldmoe preprocess`) holds a Tokenizer and never names an implementation.
// Implementations (docs/tokenizers.md): the built-in character tokenizer (the synthetic corpus), a
// SentencePiece `.model` file (through libsentencepiece) and a HF `tokenizer.json` (byte-level and
// SentencePiece-style BPE, implemented in data/tokenizers/).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // Ids are 0 .. vocab_size() - 1.
  virtual int32_t vocab_size() const = 0;
  // Text -> ids (no <bos>/<eos> added). UserError naming the position for text it cannot encode.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Ids -> text. UserError for an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  // A readable name for any id, for logs.
  virtual std::string token_name(int32_t id) const = 0;
  virtual std::optional<int32_t> bos_id() const = 0;
  virtual std::optional<int32_t> eos_id() const = 0;
  virtual std::optional<int32_t> pad_id() const = 0;
  // The id unknown text maps to, where the tokenizer has one (none for char and byte-level BPE).
  virtual std::optional<int32_t> unk_id() const { return std::nullopt; }
  // One line for logs and checkpoints, e.g. "char (98 ids)".
  virtual std::string describe() const = 0;
};

// `spec` is one of
//  - "char": the built-in 98-id character tokenizer (data/tokenizer.h);
//  - a path ending in `.model`: a SentencePiece model, encoded/decoded by libsentencepiece;
//  - a path to a HF `tokenizer.json`, or a directory holding one (with an optional
//    `tokenizer_config.json` beside it naming bos/eos/pad).
// encode() never adds bos/eos, whatever the file's post-processor says: the data pipeline adds bos
// itself. UserError (rule K3) naming the spec and what is accepted when it cannot be loaded; K1, K4..
// for a file that is broken or uses a part foldmoe does not implement.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace foldmoe::data
