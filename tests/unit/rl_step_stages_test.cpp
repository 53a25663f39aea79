// The model-free stages of an RL step (rl/step_stages.h) against hand-computed expectations.
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

#include "rl/step_stages.h"

using namespace foldmoe::rl;

namespace {

RlSample sample(std::vector<float> ent_old, float reward = 0) {
  RlSample s;
  s.length = int64_t(ent_old.size());
  s.ent_old = std::move(ent_old);
  s.reward = reward;
  s.acc = reward > 0;
  return s;
}

}  // namespace

TEST(RlStepStages, PlanPartitionsEveryEpochAndDealsPositionsToRanks) {
  const MinibatchPlan plan =
      plan_minibatches(/*seed=*/7, /*step=*/3, /*epochs=*/2, /*responses=*/12, /*minibatches=*/3);
  ASSERT_EQ(plan.epochs(), 2);
  EXPECT_EQ(plan.per_minibatch, 4);
  std::vector<int64_t> identity(12);
  std::iota(identity.begin(), identity.end(), 0);
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> sorted = plan.perms[size_t(e)];
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, identity) << "epoch " << e << " is not a permutation";
    for (int64_t b = 0; b < 3; ++b) {
      const auto mb = plan.minibatch(e, b);
      ASSERT_EQ(mb.size(), 4u);
      for (size_t j = 0; j < 4; ++j) EXPECT_EQ(mb[j], plan.perms[size_t(e)][size_t(b) * 4 + j]);
      // Two ranks: positions 0, 2 to rank 0 and 1, 3 to rank 1; one response per micro-batch.
      using V = std::vector<std::vector<int64_t>>;
      EXPECT_EQ(plan.micro_batches(e, b, 2, 0, 1), (V{{mb[0]}, {mb[2]}}));
      EXPECT_EQ(plan.micro_batches(e, b, 2, 1, 1), (V{{mb[1]}, {mb[3]}}));
      // One rank, micro-batches of 3: the last one is short.
      EXPECT_EQ(plan.micro_batches(e, b, 1, 0, 3), (V{{mb[0], mb[1], mb[2]}, {mb[3]}}));
    }
  }
  EXPECT_NE(plan.perms[0], plan.perms[1]);
  // A pure function of (seed, step, epoch): the same plan again, another one at the next step.
  EXPECT_EQ(plan_minibatches(7, 3, 2, 12, 3).perms, plan.perms);
  EXPECT_NE(plan_minibatches(7, 4, 2, 12, 3).perms[0], plan.perms[0]);
}

TEST(RlStepStages, EntropyStageFlattensResponsesAndTakesHhatFromEachTokensMinibatch) {
  RlConfig rl;
  rl.hapo.dar.enabled = true;
  rl.hapo.hhat_scope = HhatScope::MinibatchOld;
  rl.hapo.entropy_pivot = 0.5;
  const std::vector<RlSample> batch = {sample({1.0f, 2.0f}), sample({3.0f}), sample({0.5f, 0.5f, 2.5f})};
  MinibatchPlan plan;  // by hand: mini-batch j holds response perms[0][j]
  plan.minibatches = 3;
  plan.per_minibatch = 1;
  plan.perms = {{2, 0, 1}};
  const EntropyStage st = entropy_stage(batch, plan, rl);
  EXPECT_EQ(st.offset, (std::vector<int64_t>{0, 2, 3, 6}));
  EXPECT_EQ(st.summary.count, 6);
  EXPECT_DOUBLE_EQ(st.summary.mean(), 9.5 / 6);
  EXPECT_EQ(st.summary.min, 0.5f);
  EXPECT_EQ(st.summary.max, 3.0f);
  const std::vector<float> flat = {1.0f, 2.0f, 3.0f, 0.5f, 0.5f, 2.5f};
  ASSERT_TRUE(st.stats.has_value());
  EXPECT_EQ(*st.stats, *compute_entropy_stats(flat, 0.5));
  // Response 0's tokens are in mini-batch 1, response 1's in 2, response 2's in 0.
  ASSERT_EQ(st.hhat_epoch.size(), 1u);
  const std::vector<int32_t> mb_of = {1, 1, 2, 0, 0, 0};
  EXPECT_EQ(st.hhat_epoch[0], minibatch_old_hhat(flat, mb_of, 3, 0.5, rl.hapo.hhat_sign).hhat);
  // Without DAR/AAC (or with the micro-batch scope) no per-epoch h̃ is made.
  rl.hapo.dar.enabled = false;
  rl.hapo.aac.enabled = false;
  EXPECT_TRUE(entropy_stage(batch, plan, rl).hhat_epoch.empty());
}

TEST(RlStepStages, StepRecordIsMadeOfTheStagesTotals) {
  RlConfig rl;
  rl.prompts_per_step = 1;
  rl.group_size = 2;
  rl.minibatch_prompts = 1;  // M = 1
  rl.ppo_epochs = 2;
  RolloutBatch r;
  r.samples = {sample({0.0f, 0.0f}, 1.0f), sample({0.0f}, -1.0f)};
  r.samples[0].logprob_rollout = {-1.0f, -2.0f};
  r.samples[0].logp_old = {-1.5f, -2.0f};
  r.samples[1].logprob_rollout = {-0.25f};
  r.samples[1].logp_old = {-1.25f};
  r.generated = summarize_samples(r.samples, 2);
  r.rounds = 2;
  r.generated_tokens = 3;
  r.seconds = 1.5;
  EntropyStage e;
  e.summary.count = 3;
  e.summary.sum = 0.6;
  BatchAdvantages adv;
  adv.fallback_groups = 1;
  OldPolicyPass old;
  old.flips = {3, 1, 10, 4};  // two MoE layers: flipped rows 3 and 1 of 10 replayed, 4 in any layer
  UpdateTotals u;
  u.loss_sum = 3.0;
  u.sum_norm = 6.0;
  u.updates = 3;
  u.skipped = 1;
  u.kl_sum = 1.0;
  u.kl_tokens = 4;
  u.counters.tokens = 10;
  u.counters.clip_high = 2;
  StepRecordInputs in;
  in.step = 5;
  in.lr = 1e-3;
  in.t_base = 0.75f;
  in.n_moe = 2;
  in.train_seconds = 2.0;
  in.train_tokens = 50;
  in.step_seconds = 4.0;
  const nlohmann::ordered_json j = step_record(in, rl, r, e, adv, old, u);
  EXPECT_EQ(j["type"], "train");
  EXPECT_EQ(j["step"], 5);
  EXPECT_DOUBLE_EQ(j["reward_mean"].get<double>(), 0.0);
  EXPECT_DOUBLE_EQ(j["accuracy"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["response_length_mean"].get<double>(), 1.5);
  EXPECT_DOUBLE_EQ(j["tlga_fallback_rate"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(j["entropy_mean"].get<double>(), 0.2);
  EXPECT_TRUE(j["stats"].is_null());
  EXPECT_DOUBLE_EQ(j["temperature_min"].get<double>(), 0.75);  // no sampled temperatures: T_base
  EXPECT_DOUBLE_EQ(j["clip_high_frac"].get<double>(), 0.2);
  EXPECT_DOUBLE_EQ(j["rollout_vs_old_abs_logprob_mean"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["rollout_vs_old_abs_logprob_max"].get<double>(), 1.0);
  EXPECT_EQ(j["route_flip_rate"].get<std::vector<double>>(), (std::vector<double>{0.3, 0.1}));
  EXPECT_DOUBLE_EQ(j["route_flip_any_frac"].get<double>(), 0.4);
  EXPECT_DOUBLE_EQ(j["loss"].get<double>(), 1.5);  // 3.0 over M · epochs = 2 updates
  EXPECT_DOUBLE_EQ(j["kl_mean"].get<double>(), 0.25);
  EXPECT_DOUBLE_EQ(j["grad_norm"].get<double>(), 2.0);
  EXPECT_EQ(j["updates"], 3);
  EXPECT_EQ(j["skipped_updates"], 1);
  EXPECT_EQ(j["ds_rounds"], 2);
  EXPECT_DOUBLE_EQ(j["rollout_tokens_per_s"].get<double>(), 2.0);
  EXPECT_DOUBLE_EQ(j["train_tokens_per_s"].get<double>(), 25.0);
  EXPECT_EQ(j["response_tokens"], 3);
  EXPECT_DOUBLE_EQ(j["step_time_s"].get<double>(), 4.0);
  // Without replay there are no flip keys.
  old.flips = {0, 0, 0, 0};
  EXPECT_FALSE(step_record(in, rl, r, e, adv, old, u).contains("route_flip_rate"));
}

TEST(RlStepStages, AdvantageStageUsesEachResponsesRewardAndLength) {
  RlConfig rl;
  rl.group_size = 2;
  std::vector<RlSample> batch = {sample({0.0f}, 1.0f), sample({0.0f, 0.0f}, -1.0f), sample({0.0f}, 1.0f),
                                 sample({0.0f}, 1.0f)};
  const BatchAdvantages a = advantage_stage(batch, rl);
  ASSERT_EQ(a.adv.size(), 4u);
  // Group 2 has identical rewards: no signal there. Group 1 is +/- symmetric.
  EXPECT_EQ(a.adv[2], 0.0f);
  EXPECT_EQ(a.adv[3], 0.0f);
  EXPECT_GT(a.adv[0], 0.0f);
  EXPECT_LT(a.adv[1], 0.0f);
  EXPECT_EQ(a.identical_groups, 1);
}
