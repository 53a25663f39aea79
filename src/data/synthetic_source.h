// The synthetic task corpus behind the DataSource seam: training batches are
// SyntheticCorpus::global_batch (unchanged, bit for bit), validation batches come from a corpus
// with an unrelated seed (never a training step's batch), the tokenizer is the character one.
#pragma once

#include <memory>

#include "data/data_source.h"
#include "data/synthetic.h"

namespace foldmoe::data {

class SyntheticSource final : public DataSource {
 public:
  SyntheticSource(uint64_t seed, std::vector<std::string> tasks);

  Batch global_batch(int64_t step, int gbs, int seq_len) const override;
  Batch validation_batch(int64_t index, int gbs, int seq_len) const override;
  bool has_validation() const override { return true; }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  int32_t max_token_id() const override { return SyntheticCorpus::vocab_size() - 1; }
  std::string fingerprint() const override;
  std::string describe() const override;
  const SyntheticCorpus* synthetic() const override { return &corpus_; }
  std::optional<int32_t> document_start_id() const override { return tokenizer_->bos_id(); }

  // The seed of the held-out corpus (also `foldmoe eval`'s held-out loss batch).
  static uint64_t heldout_seed(uint64_t seed) { return seed ^ 0x5EEDF00Dull; }

 private:
  SyntheticCorpus corpus_, heldout_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

}  // namespace foldmoe::data
