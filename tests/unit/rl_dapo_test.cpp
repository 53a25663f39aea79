// docs/rl.md §4.3–§4.5, §6.4; worked examples E12, E13.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "rl/dynamic_sampling.h"
#include "rl/length_shaping.h"

using namespace foldmoe::rl;

TEST(RlDapo, E12SoftOverlongPunishment) {
  const OverlongParams p{.enabled = true, .l_max = 10240, .l_cache = 4096, .factor = 1.0};
  EXPECT_EQ(overlong_penalty(6144, p), 0.0f);
  EXPECT_EQ(overlong_penalty(6145, p), -0.000244140625f);
  EXPECT_EQ(overlong_penalty(8192, p), -0.5f);
  EXPECT_EQ(overlong_penalty(10240, p), -1.0f);
  EXPECT_EQ(overlong_penalty(10241, p), -1.0f);  // beyond L_max (unreachable in generation)
  EXPECT_EQ(overlong_penalty(1, p), 0.0f);
  EXPECT_EQ(assemble_reward(1.0f, 8192, p).reward, 0.5f);
  EXPECT_TRUE(assemble_reward(1.0f, 8192, p).acc);
  EXPECT_EQ(assemble_reward(-1.0f, 8192, p).reward, -1.5f);
  EXPECT_FALSE(assemble_reward(-1.0f, 8192, p).acc);
  // Factor and switch.
  OverlongParams f2 = p;
  f2.factor = 2.0;
  EXPECT_EQ(overlong_penalty(8192, f2), -1.0f);
  OverlongParams off = p;
  off.enabled = false;
  EXPECT_EQ(overlong_penalty(10240, off), 0.0f);
  EXPECT_EQ(assemble_reward(1.0f, 10240, off).reward, 1.0f);
  // Config mapping; grpo switches the penalty off.
  EXPECT_TRUE(overlong_params(rl_preset_config(RlPreset::Dapo)).enabled);
  EXPECT_FALSE(overlong_params(rl_preset_config(RlPreset::Grpo)).enabled);
  EXPECT_EQ(overlong_params(rl_preset_config(RlPreset::Hapo)).l_max, 10240);
}

TEST(RlDapo, OverlongFilterAndRewardPlacement) {
  EXPECT_EQ(loss_token_count(10240, true, true), 0);
  EXPECT_EQ(loss_token_count(10240, true, false), 10240);
  EXPECT_EQ(loss_token_count(17, false, true), 17);
  const auto r = place_reward(-0.5f, 3, 6);
  EXPECT_EQ(r, std::vector<float>({0, 0, -0.5f, 0, 0, 0}));
  EXPECT_EQ(place_reward(1.0f, 6, 6).back(), 1.0f);
  EXPECT_EQ(place_reward(1.0f, 0, 3), std::vector<float>(3, 0.0f));
}

TEST(RlDapo, KeepGroupRule) {
  EXPECT_FALSE(keep_group(std::vector<float>{1, 1, 1, 1}));
  EXPECT_FALSE(keep_group(std::vector<float>{0, 0, 0, 0}));
  EXPECT_TRUE(keep_group(std::vector<float>{0, 1, 0, 0}));
  EXPECT_TRUE(keep_group(std::vector<float>{1.0f}));  // n = 1 is kept
  // metric = reward: same correctness, different penalties are not identical outcomes.
  EXPECT_TRUE(keep_group(std::vector<float>{-1.0f, -1.5f}));
  EXPECT_FALSE(keep_group(std::vector<float>{dynamic_sampling_value(DynamicSamplingMetric::Acc, false, -1.0f),
                                             dynamic_sampling_value(DynamicSamplingMetric::Acc, false, -1.5f)}));
  EXPECT_EQ(dynamic_sampling_value(DynamicSamplingMetric::Reward, false, -1.5f), -1.5f);
  EXPECT_EQ(dynamic_sampling_value(DynamicSamplingMetric::Acc, true, 0.5f), 1.0f);
}

TEST(RlDapo, E13DynamicSampling) {
  DynamicSampler ds(3, 2);
  const std::vector<float> round1 = {1, 1, 1, 1, /**/ 0, 1, 0, 0, /**/ 0, 0, 0, 0, /**/ 1, 0, 1, 1};
  EXPECT_EQ(ds.add_round(round1, 4), DynamicSampler::Status::NeedMore);
  EXPECT_EQ(ds.kept_count(), 2);
  EXPECT_EQ(ds.rounds(), 1);
  const std::vector<float> round2 = {0, 0, 1, 0, /**/ 1, 1, 0, 1, /**/ 1, 1, 1, 1, /**/ 0, 0, 0, 0};
  EXPECT_EQ(ds.add_round(round2, 4), DynamicSampler::Status::Done);
  EXPECT_EQ(ds.kept_count(), 4);
  EXPECT_EQ(ds.dropped_count(), 4);
  const std::vector<GroupRef> batch = ds.batch();  // g2, g4, g5; g6 discarded
  ASSERT_EQ(batch.size(), 3u);
  EXPECT_EQ(batch[0], (GroupRef{0, 1}));
  EXPECT_EQ(batch[1], (GroupRef{0, 3}));
  EXPECT_EQ(batch[2], (GroupRef{1, 0}));
}

TEST(RlDapo, E13RoundLimitIsANamedError) {
  DynamicSampler ds(3, 2);
  const std::vector<float> round1 = {1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1, 1};
  ds.add_round(round1, 4);
  const std::vector<float> nothing = {1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0};
  try {
    ds.add_round(nothing, 4);
    FAIL() << "expected UserError";
  } catch (const foldmoe::UserError& e) {
    EXPECT_EQ(std::string(e.what()),
              "dynamic sampling: only 2 of 3 prompts had non-identical outcomes after 2 generation rounds; the "
              "data are too hard or too easy for the policy; raise dynamic_sampling.max_rounds (0 = unlimited) or "
              "change the data");
  }
}

TEST(RlDapo, UnlimitedRounds) {
  DynamicSampler ds(2, 0);
  const std::vector<float> dead = {1, 1, 0, 0};
  for (int k = 0; k < 25; ++k) EXPECT_EQ(ds.add_round(dead, 2), DynamicSampler::Status::NeedMore);
  const std::vector<float> good = {1, 0, 0, 1};
  EXPECT_EQ(ds.add_round(good, 2), DynamicSampler::Status::Done);
  EXPECT_EQ(ds.rounds(), 26);
  EXPECT_EQ(ds.batch()[1], (GroupRef{25, 1}));
}
