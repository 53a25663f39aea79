// Aggregation of per-token losses over one mini-batch (docs/rl.md §3.6, §4.2, §4.5). Every mode is a
// weighted sum J = Σ_tokens w_t·ℓ_t whose weights depend only on counts taken over the whole
// mini-batch (all micro-batches, all data-parallel ranks) before it starts; each micro-batch then
// contributes Σ w·ℓ over its own tokens and gradients are summed, so the result equals the
// single-process formula for every layout (the true token mean, not the released per-micro-batch
// weighting).
//
//   token-mean               w = 1/N_mb                     (dapo, hapo)
//   seq-mean-token-mean      w = 1/(B·L_i)                  (grpo)
//   seq-mean-token-sum       w = 1/B
//   seq-mean-token-sum-norm  w = 1/L_max   (constant divisor, no 1/B: E11 gives 6/4 = 1.5)
//
// "Loss tokens" of a response are its valid tokens, or none when the overlong filter removes a
// truncated response (docs/rl.md §4.5). B counts responses with at least one loss token. A mini-batch with no
// loss token has J = 0 and zero gradients.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

struct MinibatchCounts {
  int64_t tokens = 0;     // N_mb: loss tokens of the mini-batch over all ranks
  int64_t sequences = 0;  // B: responses with >= 1 loss token
  int64_t l_max = 0;      // L_max (seq-mean-token-sum-norm)
  void add(const MinibatchCounts& o) {  // for the cross-rank sum (l_max is a constant)
    tokens += o.tokens;
    sequences += o.sequences;
  }
};

// Counts over this rank's responses of the mini-batch (sum them over ranks with add()).
MinibatchCounts count_minibatch(std::span<const int64_t> loss_tokens_per_response, int64_t l_max);

// Weight of every loss token of a response with `loss_tokens` loss tokens (0 if it has none).
float aggregation_weight(LossAggregation mode, int64_t loss_tokens, const MinibatchCounts& counts);

}  // namespace foldmoe::rl
