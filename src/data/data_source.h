// The one data seam of training: everything the trainer, evaluation and generation need from the
// data, whatever the source. Implementations:
//   SyntheticSource  the built-in task corpus (data/synthetic.h), character tokenizer
//   IndexedSource    Megatron .bin/.idx token files through GptDataset (data/gpt_dataset.h)
// The batch of step k is a pure function of (data, seed, k, batch shape): never of the layout, the
// call order or earlier calls, so every layout slices the same global batch and a resumed run sees
// exactly the tokens the uninterrupted one would have seen.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "data/batch.h"
#include "data/text_tokenizer.h"

namespace foldmoe::data {

class SyntheticCorpus;

class DataSource {
 public:
  virtual ~DataSource() = default;

  // The global batch of optimizer step `step`: gbs sequences of seq_len+1 tokens.
  virtual Batch global_batch(int64_t step, int gbs, int seq_len) const = 0;
  // Validation batch `index` (0, 1, ...) of the held-out split: the same tokens every time it is asked
  // for. Only when has_validation().
  virtual Batch validation_batch(int64_t index, int gbs, int seq_len) const = 0;
  virtual bool has_validation() const = 0;

  // The tokenizer the data was made with (prompts, generation, RL).
  virtual const Tokenizer& tokenizer() const = 0;
  // Largest token id that occurs in the data (the model's vocabulary must exceed it).
  virtual int32_t max_token_id() const = 0;
  // Identifies the token stream: source, datasets (with their own fingerprints), split, seed. The
  // trainer adds the sequence length, checkpoints record the result, and resuming on data with
  // another fingerprint is refused (rule D24).
  virtual std::string fingerprint() const = 0;
  // One line for the start of a run, e.g. "synthetic tasks (4 tasks), tokenizer char (98 ids)".
  virtual std::string describe() const = 0;
  // The synthetic corpus behind this source (exact-answer task evaluation), or nullptr.
  virtual const SyntheticCorpus* synthetic() const { return nullptr; }
  // What precedes a document's first token in this data (prompts start with it), if anything.
  virtual std::optional<int32_t> document_start_id() const = 0;
};

// document_start_id of the source cfg.data would open, without opening it: the synthetic corpus
// starts every sequence with <bos>; in packed indexed data a document follows the end-of-document
// token of the one before it.
std::optional<int32_t> document_start_id(const Config& cfg, const Tokenizer& tokenizer);
// A prompt as the model sees it: document_start_id (if any), then the encoded text. UserError from
// the tokenizer for text it cannot encode.
std::vector<int32_t> prompt_ids(std::optional<int32_t> document_start, const Tokenizer& tokenizer,
                                std::string_view text);
inline std::vector<int32_t> prompt_ids(const DataSource& data, std::string_view text) {
  return prompt_ids(data.document_start_id(), data.tokenizer(), text);
}
// A generated continuation as text, up to (excluding) the first end-of-text token: ordinary ids
// decoded together (so multi-byte characters and word pieces join up), special ones (<pad>, <bos>,
// ids outside the vocabulary) shown as `special` or, without it, by their token names.
std::string continuation_text(const Tokenizer& tokenizer, std::span<const int32_t> ids,
                              std::optional<char> special = std::nullopt);

// The source of cfg.data. `with_validation`: also open the held-out split (indexed data: a
// UserError if it is empty). UserError naming the file or key for anything it cannot use.
std::unique_ptr<DataSource> make_data_source(const Config& cfg, bool with_validation);

// Whether validation runs during `foldmoe train` ([eval] interval > 0).
inline bool validation_enabled(const Config& cfg) {
  return cfg.eval.interval > 0;
}

}  // namespace foldmoe::data
