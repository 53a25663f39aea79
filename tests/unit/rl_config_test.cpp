// Spec 04 §7.1 presets and §13 configuration rules.
#include <gtest/gtest.h>

#include <string>

#include "core/check.h"
#include "rl/rl_config.h"

using namespace foldmoe::rl;

namespace {
std::string error_of(const RlConfig& c, const RlRunFacts& f = {}) {
  try {
    validate_rl_config(c, f);
  } catch (const foldmoe::UserError& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST(RlConfig, DefaultsAreTheHapoPreset) {
  const RlConfig d;
  EXPECT_EQ(d, rl_preset_config(RlPreset::Hapo));
  EXPECT_EQ(d.prompts_per_step, 512);
  EXPECT_EQ(d.group_size, 16);
  EXPECT_EQ(d.num_minibatches(), 16);
  EXPECT_EQ(d.gen_prompts_per_round(), 1536);
  EXPECT_EQ(d.advantage.estimator, AdvantageEstimator::Tlga);
  EXPECT_EQ(d.loss.clip_high, 0.28);
  EXPECT_EQ(d.hapo.ats.tau, 0.05);
  EXPECT_EQ(d.hapo.hhat_sign, HhatSign::Intended);
  EXPECT_EQ(d.hapo.hhat_scope, HhatScope::MinibatchOld);
  EXPECT_EQ(d.router_replay_mode(true), RouterReplayMode::Rollout);
  EXPECT_EQ(d.router_replay_mode(false), RouterReplayMode::Off);
  EXPECT_EQ(error_of(d, RlRunFacts{.model_is_moe = true}), "");
}

TEST(RlConfig, PresetsDifferAsInSection71) {
  const RlConfig g = rl_preset_config(RlPreset::Grpo), d = rl_preset_config(RlPreset::Dapo),
                 r = rl_preset_config(RlPreset::HapoReleased);
  EXPECT_EQ(g.advantage.estimator, AdvantageEstimator::Grpo);
  EXPECT_EQ(g.loss.clip_high, 0.2);
  EXPECT_EQ(g.loss.aggregation, LossAggregation::SeqMeanTokenMean);
  EXPECT_FALSE(g.reward.overlong.enabled);
  EXPECT_FALSE(g.hapo.ats.enabled || g.hapo.dar.enabled || g.hapo.aac.enabled || g.dynamic_sampling.enabled);
  EXPECT_EQ(d.advantage.estimator, AdvantageEstimator::Grpo);
  EXPECT_EQ(d.loss.clip_high, 0.28);
  EXPECT_EQ(d.loss.aggregation, LossAggregation::TokenMean);
  EXPECT_TRUE(d.reward.overlong.enabled);
  EXPECT_TRUE(d.dynamic_sampling.enabled);
  EXPECT_EQ(d.dynamic_sampling.max_rounds, 10);
  EXPECT_FALSE(d.hapo.ats.enabled || d.hapo.dar.enabled || d.hapo.aac.enabled);
  EXPECT_EQ(r.hapo.hhat_sign, HhatSign::PaperCode);
  EXPECT_EQ(r.loss.clip_high, 0.2);
  EXPECT_EQ(r.hapo.hhat_scope, HhatScope::MicrobatchCurrent);
  EXPECT_EQ(r.reward.equivalence_fallback, EquivalenceFallback::Numeric);
  EXPECT_FALSE(r.dynamic_sampling.enabled);
  EXPECT_TRUE(r.hapo.ats.enabled);
  // A preset leaves non-preset keys (P, n, lengths, optimizer) alone.
  RlConfig c;
  c.prompts_per_step = 64;
  c.group_size = 8;
  apply_rl_preset(c, RlPreset::Dapo);
  EXPECT_EQ(c.prompts_per_step, 64);
  EXPECT_EQ(c.group_size, 8);
  EXPECT_EQ(c.gen_prompts_per_round(), 192);
  EXPECT_EQ(c.preset, RlPreset::Dapo);
}

TEST(RlConfig, EnumSpellingsRoundTrip) {
  for (auto p : {RlPreset::Grpo, RlPreset::Dapo, RlPreset::Hapo, RlPreset::HapoReleased})
    EXPECT_EQ(parse_rl_preset(to_string(p)), p);
  EXPECT_EQ(to_string(RlPreset::HapoReleased), "hapo-released");
  EXPECT_EQ(parse_hhat_sign("paper-code"), HhatSign::PaperCode);
  EXPECT_EQ(parse_loss_aggregation("seq-mean-token-sum-norm"), LossAggregation::SeqMeanTokenSumNorm);
  EXPECT_EQ(parse_hhat_scope("microbatch-current"), HhatScope::MicrobatchCurrent);
  EXPECT_EQ(parse_tlga_fallback_scope("valid"), TlgaFallbackScope::Valid);
  EXPECT_EQ(parse_router_replay_mode("old"), RouterReplayMode::Old);
  try {
    parse_hhat_sign("papercode");
    FAIL();
  } catch (const foldmoe::UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("rl.hapo.hhat_sign"), std::string::npos);
    EXPECT_NE(m.find("intended | paper-code"), std::string::npos);
  }
}

TEST(RlConfig, ValidationRulesOfSection13) {
  auto expect_error = [](RlConfig c, const std::string& key, RlRunFacts f = {}) {
    const std::string e = error_of(c, f);
    EXPECT_NE(e.find("config error " + key), std::string::npos) << key << ": " << e;
  };
  RlConfig c;
  c.minibatch_prompts = 30;
  expect_error(c, "rl.minibatch_prompts");
  c = RlConfig{};
  c.group_size = 0;
  expect_error(c, "rl.group_size");
  c = RlConfig{};
  c.loss.dual_clip_c = 1.0;
  expect_error(c, "rl.loss.dual_clip_c");
  c.loss.dual_clip_c = 0.0;
  EXPECT_EQ(error_of(c), "");
  c = RlConfig{};
  c.hapo.entropy_pivot = 1.2;
  expect_error(c, "rl.hapo.entropy_pivot");
  c = RlConfig{};
  c.hapo.ats.tau = 1.0;
  expect_error(c, "rl.hapo.ats.tau");
  c.hapo.ats.tau = -0.1;
  expect_error(c, "rl.hapo.ats.tau");
  c = RlConfig{};
  expect_error(c, "rl.router_replay.mode", RlRunFacts{.model_is_moe = true, .moe_has_capacity_factor = true});
  c.loss.kl_coef = 0.1;
  expect_error(c, "rl.loss.kl_coef");
  EXPECT_EQ(error_of(c, RlRunFacts{.has_reference_checkpoint = true}), "");
  EXPECT_NE(error_of(c).find("rl.reference"), std::string::npos);  // the fix names the key to set
  c = RlConfig{};
  c.loss.entropy_coef = -0.01;
  expect_error(c, "rl.loss.entropy_coef");
  c.loss.entropy_coef = 0.01;
  EXPECT_EQ(error_of(c), "");
  c = RlConfig{};
  c.dynamic_sampling.gen_prompts_per_round = 0;
  expect_error(c, "rl.dynamic_sampling.gen_prompts_per_round");
  // Several violations are listed together.
  c.group_size = 0;
  const std::string e = error_of(c);
  EXPECT_NE(e.find("rl.group_size"), std::string::npos);
  EXPECT_NE(e.find("rl.dynamic_sampling.gen_prompts_per_round"), std::string::npos);
}

TEST(RlConfig, LearningRateWarmup) {
  const RlConfig c;
  EXPECT_DOUBLE_EQ(c.learning_rate(1), 1e-7);  // k/W, not (k−1)/W
  EXPECT_DOUBLE_EQ(c.learning_rate(10), 1e-6);
  EXPECT_DOUBLE_EQ(c.learning_rate(500), 1e-6);
}
