// The one tokenizer seam: everything that turns text into token ids (training data, eval, generate,
// RL prompts, `foldmoe preprocess`) holds a Tokenizer and never names an implementation.
// Implementations: the built-in character tokenizer (the synthetic corpus); HF tokenizer.json and
// SentencePiece .model files are added behind load_tokenizer.
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
  // One line for logs and checkpoints, e.g. "char (98 ids)".
  virtual std::string describe() const = 0;
};

// `spec` is "char" (the built-in character tokenizer) or a path to a tokenizer file. UserError
// naming the spec and what is accepted when it cannot be loaded.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec);

}  // namespace foldmoe::data
