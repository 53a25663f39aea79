#include "rl/rl_aggregation.h"

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

std::vector<float> padded_token_weights(LossAggregation mode, std::span<const int64_t> loss_tokens_per_response,
                                        int64_t width, const MinibatchCounts& counts) {
  std::vector<float> w(loss_tokens_per_response.size() * size_t(width), 0.0f);
  for (size_t i = 0; i < loss_tokens_per_response.size(); ++i) {
    const int64_t l = loss_tokens_per_response[i];
    FOLDMOE_CHECK(l <= width, "response {} has {} loss tokens > width {}", i, l, width);
    const float wi = aggregation_weight(mode, l, counts);
    for (int64_t t = 0; t < l; ++t) w[i * size_t(width) + size_t(t)] = wi;
  }
  return w;
}

double aggregate_loss(LossAggregation mode, const std::vector<std::vector<double>>& token_losses, int64_t l_max) {
  double total = 0, seq_mean_sum = 0, seq_sum_sum = 0;
  int64_t n = 0, b = 0;
  for (const auto& resp : token_losses) {
    if (resp.empty()) continue;
    double s = 0;
    for (double v : resp) s += v;
    total += s;
    n += int64_t(resp.size());
    ++b;
    seq_mean_sum += s / double(resp.size());
    seq_sum_sum += s;
  }
  if (n == 0) return 0.0;
  switch (mode) {
    case LossAggregation::TokenMean: return total / double(n);
    case LossAggregation::SeqMeanTokenMean: return seq_mean_sum / double(b);
    case LossAggregation::SeqMeanTokenSum: return seq_sum_sum / double(b);
    case LossAggregation::SeqMeanTokenSumNorm: return total / double(l_max);
  }
  FOLDMOE_CHECK(false, "unknown aggregation mode");
}

}  // namespace foldmoe::rl
