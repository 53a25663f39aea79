// One optimizer step's global batch, as every data source hands it to the trainer: GBS sequences
// of S+1 tokens (inputs tokens[:, :S], targets tokens[:, 1:]), which targets count in the loss,
// and (synthetic data only) which task each target belongs to.
#pragma once

#include <cstdint>

#include "core/tensor.h"

namespace foldmoe::data {

// task_ids value of a position whose target belongs to no synthetic task (padding, or any target
// of a non-synthetic source).
inline constexpr uint8_t kNoTask = 255;

struct Batch {
  Tensor tokens;     // I32 [GBS, S+1]: inputs tokens[:, :S], targets tokens[:, 1:]
  Tensor loss_mask;  // U8  [GBS, S]: 1 where the target token counts in the loss
  Tensor task_ids;   // U8  [GBS, S]: Task of the line the target token belongs to; kNoTask on padding

  int64_t rows() const { return tokens.size(0); }
  int64_t seq_len() const { return loss_mask.size(1); }
  // Tokens that count in the loss (the per-token normaliser n_glob of docs/dense-parallel.md §7).
  int64_t valid_tokens() const;
  // Rows [begin, end), sharing storage (micro-batches, data-parallel shards).
  Batch slice(int64_t begin, int64_t end) const;
};

}  // namespace foldmoe::data
