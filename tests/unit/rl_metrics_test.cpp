// docs/rl.md §14 metric helpers.
#include <gtest/gtest.h>

#include <vector>

#include "rl/step_metrics.h"

using namespace foldmoe::rl;

TEST(RlMetrics, SeriesSummaryMaskedAndMerged) {
  const std::vector<float> v = {-1.0f, 0.0f, 0.5f, 2.0f};
  const std::vector<uint8_t> m = {1, 1, 1, 0};
  SeriesSummary s = summarize(v, m);
  EXPECT_EQ(s.count, 3);
  EXPECT_EQ(s.nonpositive, 2);
  EXPECT_DOUBLE_EQ(s.mean(), -0.5 / 3);
  EXPECT_EQ(s.min, -1.0f);
  EXPECT_EQ(s.max, 0.5f);
  s.add(summarize(v));
  EXPECT_EQ(s.count, 7);
  EXPECT_EQ(s.max, 2.0f);
  EXPECT_EQ(summarize({}).mean(), 0.0);
}

TEST(RlMetrics, RolloutSummary) {
  const std::vector<float> R = {1, -1, -1.5f, -1, /**/ -1, -1, -1, -1};
  const std::vector<uint8_t> acc = {1, 0, 0, 0, 0, 0, 0, 0};
  const std::vector<int64_t> L = {10, 20, 8192, 30, 5, 5, 5, 5};
  const std::vector<uint8_t> trunc = {0, 0, 1, 0, 0, 0, 0, 0};
  const std::vector<float> pen = {0, 0, -0.5f, 0, 0, 0, 0, 0};
  const RolloutSummary s = summarize_rollout(R, acc, L, trunc, pen, 4);
  EXPECT_EQ(s.groups, 2);
  EXPECT_EQ(s.identical_groups, 1);
  EXPECT_DOUBLE_EQ(s.accuracy(), 1.0 / 8);
  EXPECT_DOUBLE_EQ(s.truncation_rate(), 1.0 / 8);
  EXPECT_EQ(s.max_length, 8192);
  EXPECT_DOUBLE_EQ(s.overlong_penalty_mean(), -0.5 / 8);
  EXPECT_DOUBLE_EQ(s.reward_mean(), -6.5 / 8);
}
