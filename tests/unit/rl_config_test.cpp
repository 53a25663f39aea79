// RL presets and the [rl] configuration rules (docs/rules.md V1, R1–R6).
#include <gtest/gtest.h>

#include <initializer_list>
#include <optional>
#include <string>

#include "config/rl_rules.h"
#include "config/rl_section.h"
#include "core/check.h"

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
    EXPECT_EQ(parse_enum<RlPreset>(to_string(p)), p);
  EXPECT_EQ(to_string(RlPreset::HapoReleased), "hapo-released");
  EXPECT_EQ(parse_enum<HhatSign>("paper-code"), HhatSign::PaperCode);
  EXPECT_EQ(parse_enum<LossAggregation>("seq-mean-token-sum-norm"), LossAggregation::SeqMeanTokenSumNorm);
  EXPECT_EQ(parse_enum<HhatScope>("microbatch-current"), HhatScope::MicrobatchCurrent);
  EXPECT_EQ(parse_enum<TlgaFallbackScope>("valid"), TlgaFallbackScope::Valid);
  EXPECT_EQ(parse_enum<RouterReplayMode>("old"), RouterReplayMode::Old);
  EXPECT_EQ(parse_enum<HhatSign>("papercode"), std::nullopt);
  EXPECT_EQ(enum_choices<HhatSign>(), "intended | paper-code");
  EXPECT_EQ(enum_choices<RlPreset>(), "grpo | dapo | hapo | hapo-released");
}

TEST(RlConfig, ValidationRules) {
  // Expects an error with rule `id` whose text contains `needle`.
  auto expect_error = [](RlConfig c, const std::string& id, const std::string& needle, RlRunFacts f = {}) {
    const std::string e = error_of(c, f);
    EXPECT_NE(e.find("config error " + id + ": "), std::string::npos) << id << ": " << e;
    EXPECT_NE(e.find(needle), std::string::npos) << needle << ": " << e;
    EXPECT_NE(e.find("fix: "), std::string::npos) << e;
  };
  RlConfig c;
  c.minibatch_prompts = 30;
  expect_error(c, "R1", "prompts_per_step = 512 is not divisible by minibatch_prompts = 30");
  c = RlConfig{};
  c.group_size = 0;
  expect_error(c, "V1", "[rl] group_size = 0 must be >= 1");
  c = RlConfig{};
  c.loss.dual_clip_c = 1.0;
  expect_error(c, "V1", "[rl] loss.dual_clip_c = 1");
  c.loss.dual_clip_c = 0.0;
  EXPECT_EQ(error_of(c), "");
  c = RlConfig{};
  c.hapo.entropy_pivot = 1.2;
  expect_error(c, "V1", "[rl] hapo.entropy_pivot = 1.2");
  c = RlConfig{};
  c.hapo.ats.tau = 1.0;
  expect_error(c, "V1", "[rl] hapo.ats.tau = 1");
  c.hapo.ats.tau = -0.1;
  expect_error(c, "V1", "[rl] hapo.ats.tau = -0.1");
  c = RlConfig{};
  expect_error(c, "R5", "dropless", RlRunFacts{.model_is_moe = true, .moe_has_capacity_factor = true});
  c.router_replay.mode = RouterReplayMode::Rollout;
  expect_error(c, "R4", "needs an MoE model");
  c = RlConfig{};
  c.loss.kl_coef = 0.1;
  expect_error(c, "R2", "[rl] loss.kl_coef = 0.1");
  EXPECT_EQ(error_of(c, RlRunFacts{.has_reference_checkpoint = true}), "");
  EXPECT_NE(error_of(c).find("rl.reference"), std::string::npos);  // the fix names the key to set
  c = RlConfig{};
  c.loss.entropy_coef = -0.01;
  expect_error(c, "V1", "[rl] loss.entropy_coef = -0.01");
  c.loss.entropy_coef = 0.01;
  EXPECT_EQ(error_of(c), "");
  c = RlConfig{};
  c.reward.overlong.buffer_tokens = 20000;
  expect_error(c, "R3", "buffer_tokens = 20000 is outside [1, max_response_tokens = 10240]");
  c.reward.overlong.enabled = false;  // the buffer is unused then
  EXPECT_EQ(error_of(c), "");
  c = RlConfig{};
  c.reward.template_name = "none";
  expect_error(c, "V3", "[rl] reward.template = \"none\"");
  c = RlConfig{};
  expect_error(c, "R6", "data-parallel size 3", RlRunFacts{.data_parallel = 3});
  EXPECT_EQ(error_of(c, RlRunFacts{.data_parallel = 4}), "");
  for (auto edit : std::initializer_list<void (*)(RlConfig&)>{
           [](RlConfig& r) { r.steps = 0; }, [](RlConfig& r) { r.micro_batch = 0; },
           [](RlConfig& r) { r.eval_questions = -1; }, [](RlConfig& r) { r.checkpoint_every = -1; },
           [](RlConfig& r) { r.optim.eps = 0; }, [](RlConfig& r) { r.optim.beta2 = 1.0; },
           [](RlConfig& r) { r.optim.lr = -1e-6; }, [](RlConfig& r) { r.optim.weight_decay = -0.1; },
           [](RlConfig& r) { r.optim.warmup_steps = -1; }, [](RlConfig& r) { r.rollout.top_p = 0; },
           [](RlConfig& r) { r.rollout.top_k = 0; }, [](RlConfig& r) { r.eval.temperature = 0; },
           [](RlConfig& r) { r.advantage.eps = 0; }, [](RlConfig& r) { r.max_response_tokens = 0; }}) {
    RlConfig bad;
    edit(bad);
    EXPECT_NE(error_of(bad).find("config error V1: [rl] "), std::string::npos) << error_of(bad);
  }
  c = RlConfig{};
  c.dynamic_sampling.gen_prompts_per_round = 0;
  expect_error(c, "V1", "[rl] dynamic_sampling.gen_prompts_per_round = 0");
  // Several violations are listed together.
  c.group_size = 0;
  const std::string e = error_of(c);
  EXPECT_NE(e.find("2 configuration errors:"), std::string::npos) << e;
  EXPECT_NE(e.find("[rl] group_size"), std::string::npos);
  EXPECT_NE(e.find("[rl] dynamic_sampling.gen_prompts_per_round"), std::string::npos);
}

TEST(RlConfig, LearningRateWarmup) {
  const RlConfig c;
  EXPECT_DOUBLE_EQ(c.learning_rate(1), 1e-7);  // k/W, not (k−1)/W
  EXPECT_DOUBLE_EQ(c.learning_rate(10), 1e-6);
  EXPECT_DOUBLE_EQ(c.learning_rate(500), 1e-6);
}
