// Megatron-style indexed data (.bin/.idx, blended, split into train/valid/test) behind the
// DataSource seam. Step k's batch is the train split's samples [k·gbs, (k+1)·gbs); validation
// batch i is the valid split's samples [i·gbs, (i+1)·gbs). task_ids are kNoTask everywhere.
//
// Loss mask: 1 on every target, except with eod_mask_loss, where Megatron's rule applies: a
// position whose INPUT token is the end-of-document id gets no loss (its target is the first
// token of the next document, which nothing before the boundary can predict). The EOD target
// itself (predicting that a document ends) still counts.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "data/data_source.h"

namespace foldmoe::data {

// The loss mask of `rows` sequences of seq_len+1 tokens ([rows, S] into mask): 1, or with
// eod_mask_loss 0 where tokens[r, s] == eod_id (s < S).
void fill_indexed_loss_mask(std::span<const int32_t> tokens, int64_t rows, int64_t seq_len, bool eod_mask_loss,
                            int32_t eod_id, std::span<uint8_t> mask);

class GptDataset;

class IndexedSource final : public DataSource {
 public:
  // cfg.data.source == "indexed". Opens the train split (and, with_validation, the valid split) at
  // cfg.train.seq_len; UserError for missing files, a split that leaves the needed part empty, or a
  // tokenizer that cannot be loaded.
  IndexedSource(const Config& cfg, bool with_validation);
  ~IndexedSource() override;

  Batch global_batch(int64_t step, int gbs, int seq_len) const override;
  Batch validation_batch(int64_t index, int gbs, int seq_len) const override;
  bool has_validation() const override { return valid_ != nullptr; }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  int32_t max_token_id() const override;
  std::string fingerprint() const override;
  std::string describe() const override;
  std::optional<int32_t> document_start_id() const override { return tokenizer_->eos_id(); }

 private:
  Batch batch_of(const GptDataset& ds, int64_t first_sample, int gbs, int seq_len) const;

  std::vector<std::string> paths_;
  std::vector<double> weights_;
  std::string split_;
  uint64_t seed_ = 0;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<GptDataset> train_, valid_;
  int seq_len_ = 0;
  bool eod_mask_loss_ = false;
  int32_t eod_id_ = -1;
};

}  // namespace foldmoe::data
