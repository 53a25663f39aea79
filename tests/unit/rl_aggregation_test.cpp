// docs/rl.md §3.6, §4.2, §4.5; worked example E11.
#include <gtest/gtest.h>

#include <span>
#include <vector>

#include "rl/loss_aggregation.h"
#include "rl/policy_loss.h"
#include "rl_test_util.h"

using namespace foldmoe::rl;
using foldmoe::rl::test::near_rel;

namespace {
// Per-token weights for a padded [responses × width] layout: positions t < loss_tokens_i get the
// response's weight, the rest 0.
std::vector<float> padded_token_weights(LossAggregation mode, std::span<const int64_t> loss_tokens_per_response,
                                        int64_t width, const MinibatchCounts& counts) {
  std::vector<float> w(loss_tokens_per_response.size() * size_t(width), 0.0f);
  for (size_t i = 0; i < loss_tokens_per_response.size(); ++i) {
    const int64_t l = loss_tokens_per_response[i];
    EXPECT_LE(l, width) << "response " << i;
    const float wi = aggregation_weight(mode, l, counts);
    for (int64_t t = 0; t < l; ++t) w[i * size_t(width) + size_t(t)] = wi;
  }
  return w;
}

// Reference: the aggregated loss of a mini-batch from per-response lists of per-token losses, in
// binary64, written from the definitions (docs/rl.md §4.2) independently of aggregation_weight.
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
  ADD_FAILURE() << "unknown aggregation mode";
  return 0.0;
}

const std::vector<std::vector<double>> kE11 = {{1, 3}, {0.5, 0.5, 0.5, 0.5}};

// Σ w·ℓ over responses with the weights of aggregation_weight.
double weighted(LossAggregation mode, const std::vector<std::vector<double>>& losses, const MinibatchCounts& c) {
  double j = 0;
  for (const auto& r : losses)
    for (double l : r) j += double(aggregation_weight(mode, int64_t(r.size()), c)) * l;
  return j;
}
}  // namespace

TEST(RlAggregation, E11Modes) {
  EXPECT_DOUBLE_EQ(aggregate_loss(LossAggregation::TokenMean, kE11, 4), 1.0);
  EXPECT_DOUBLE_EQ(aggregate_loss(LossAggregation::SeqMeanTokenMean, kE11, 4), 1.25);
  EXPECT_DOUBLE_EQ(aggregate_loss(LossAggregation::SeqMeanTokenSum, kE11, 4), 3.0);
  EXPECT_DOUBLE_EQ(aggregate_loss(LossAggregation::SeqMeanTokenSumNorm, kE11, 4), 1.5);
  const std::vector<int64_t> lens = {2, 4};
  const MinibatchCounts c = count_minibatch(lens, 4);
  EXPECT_EQ(c.tokens, 6);
  EXPECT_EQ(c.sequences, 2);
  for (auto mode : {LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean, LossAggregation::SeqMeanTokenSum,
                    LossAggregation::SeqMeanTokenSumNorm})
    EXPECT_TRUE(near_rel(weighted(mode, kE11, c), aggregate_loss(mode, kE11, 4), 1e-6)) << int(mode);
}

TEST(RlAggregation, E11TwoRanksSumToTheTrueTokenMean) {
  // Counts are summed over ranks before the mini-batch; each rank contributes Σ w·ℓ over its tokens.
  const std::vector<int64_t> rank0 = {2}, rank1 = {4};
  MinibatchCounts c = count_minibatch(rank0, 4);
  c.add(count_minibatch(rank1, 4));
  EXPECT_EQ(c.tokens, 6);
  const double part0 = (1 + 3) * double(aggregation_weight(LossAggregation::TokenMean, 2, c));
  const double part1 = 2.0 * double(aggregation_weight(LossAggregation::TokenMean, 4, c));
  EXPECT_TRUE(near_rel(part0, 4.0 / 6, 1e-6));
  EXPECT_TRUE(near_rel(part1, 2.0 / 6, 1e-6));
  EXPECT_TRUE(near_rel(part0 + part1, 1.0, 1e-6));  // the released weighting would give 1.25
}

TEST(RlAggregation, PaddedWeightsAndPolicyLossAreLayoutIndependent) {
  // Three responses in a padded [3 × 5] layout vs split over micro-batches: same J and gradients.
  const std::vector<int64_t> lens = {2, 5, 3};
  const int64_t width = 5;
  const MinibatchCounts c = count_minibatch(lens, 5);
  std::vector<float> logp(15), old(15, -1.0f), adv(15), hh(15);
  for (size_t j = 0; j < 15; ++j) {
    logp[j] = -1.0f + 0.05f * float(int(j % 7) - 3);
    adv[j] = j < 5 ? 1.3f : j < 10 ? -0.7f : 0.4f;
    hh[j] = float(int(j % 5) - 2) * 0.4f;
  }
  PolicyLossParams p;
  p.aac = p.dar = true;
  for (auto mode : {LossAggregation::TokenMean, LossAggregation::SeqMeanTokenMean}) {
    const auto w = padded_token_weights(mode, lens, width, c);
    const PolicyLossResult whole = policy_loss({logp, old, adv, hh, w, {}}, p);
    double split = 0;
    std::vector<float> grad;
    for (size_t i = 0; i < 3; ++i) {
      const size_t o = i * size_t(width);
      auto sub = [&](const std::vector<float>& v) { return std::span<const float>(v).subspan(o, size_t(width)); };
      const PolicyLossResult part = policy_loss({sub(logp), sub(old), sub(adv), sub(hh), sub(w), {}}, p);
      split += part.loss;
      grad.insert(grad.end(), part.dloss_dlogp.begin(), part.dloss_dlogp.end());
    }
    EXPECT_NEAR(whole.loss, split, 1e-7);
    EXPECT_EQ(whole.dloss_dlogp, grad);
    EXPECT_EQ(whole.counters.tokens, 10);
  }
}

TEST(RlAggregation, OverlongFilterAndEmptyMinibatch) {
  // A filtered response has no loss tokens: not in N_mb, not in B, weight 0.
  const std::vector<int64_t> lens = {3, 0, 5};
  const MinibatchCounts c = count_minibatch(lens, 8);
  EXPECT_EQ(c.tokens, 8);
  EXPECT_EQ(c.sequences, 2);
  EXPECT_EQ(aggregation_weight(LossAggregation::TokenMean, 0, c), 0.0f);
  EXPECT_FLOAT_EQ(aggregation_weight(LossAggregation::SeqMeanTokenMean, 5, c), 0.1f);
  const auto w = padded_token_weights(LossAggregation::TokenMean, lens, 5, c);
  for (size_t t = 0; t < 5; ++t) EXPECT_EQ(w[5 + t], 0.0f);
  // Zero valid tokens: nothing to weight, J = 0.
  const std::vector<int64_t> none = {0, 0};
  const MinibatchCounts z = count_minibatch(none, 8);
  EXPECT_EQ(z.tokens, 0);
  const auto wz = padded_token_weights(LossAggregation::TokenMean, none, 4, z);
  for (float v : wz) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(aggregate_loss(LossAggregation::TokenMean, {{}, {}}, 8), 0.0);
}
