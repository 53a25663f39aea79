#include "rl/loss_aggregation.h"

#include "core/check.h"

namespace foldmoe::rl {

MinibatchCounts count_minibatch(std::span<const int64_t> loss_tokens_per_response, int64_t l_max) {
  MinibatchCounts c;
  c.l_max = l_max;
  for (int64_t l : loss_tokens_per_response) {
    FOLDMOE_CHECK(l >= 0, "negative token count");
    c.tokens += l;
    c.sequences += l > 0;
  }
  return c;
}

float aggregation_weight(LossAggregation mode, int64_t loss_tokens, const MinibatchCounts& counts) {
  if (loss_tokens <= 0) return 0.0f;
  switch (mode) {
    case LossAggregation::TokenMean:
      FOLDMOE_CHECK(counts.tokens > 0, "token-mean over an empty mini-batch");
      return float(1.0 / double(counts.tokens));
    case LossAggregation::SeqMeanTokenMean:
      FOLDMOE_CHECK(counts.sequences > 0, "seq-mean over an empty mini-batch");
      return float(1.0 / (double(counts.sequences) * double(loss_tokens)));
    case LossAggregation::SeqMeanTokenSum:
      FOLDMOE_CHECK(counts.sequences > 0, "seq-mean over an empty mini-batch");
      return float(1.0 / double(counts.sequences));
    case LossAggregation::SeqMeanTokenSumNorm:
      FOLDMOE_CHECK(counts.l_max > 0, "seq-mean-token-sum-norm needs L_max > 0");
      return float(1.0 / double(counts.l_max));
  }
  FOLDMOE_CHECK(false, "unknown aggregation mode");
}

}  // namespace foldmoe::rl
