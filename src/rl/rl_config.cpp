#include "rl/rl_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "core/check.h"

namespace foldmoe::rl {
namespace {

template <typename E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<RlPreset, 4> kPreset{{{RlPreset::Grpo, "grpo"},
                                      {RlPreset::Dapo, "dapo"},
                                      {RlPreset::Hapo, "hapo"},
                                      {RlPreset::HapoReleased, "hapo-released"}}};
constexpr Names<AdvantageEstimator, 2> kEstimator{{{AdvantageEstimator::Tlga, "tlga"}, {AdvantageEstimator::Grpo, "grpo"}}};
constexpr Names<TlgaFallbackScope, 2> kFallbackScope{
    {{TlgaFallbackScope::ValidAndZero, "valid-and-zero"}, {TlgaFallbackScope::Valid, "valid"}}};
constexpr Names<LossAggregation, 4> kAggregation{{{LossAggregation::TokenMean, "token-mean"},
                                                  {LossAggregation::SeqMeanTokenMean, "seq-mean-token-mean"},
                                                  {LossAggregation::SeqMeanTokenSum, "seq-mean-token-sum"},
                                                  {LossAggregation::SeqMeanTokenSumNorm, "seq-mean-token-sum-norm"}}};
constexpr Names<EquivalenceFallback, 2> kEquivalence{
    {{EquivalenceFallback::None, "none"}, {EquivalenceFallback::Numeric, "numeric"}}};
constexpr Names<DynamicSamplingMetric, 2> kDsMetric{
    {{DynamicSamplingMetric::Acc, "acc"}, {DynamicSamplingMetric::Reward, "reward"}}};
constexpr Names<HhatSign, 2> kSign{{{HhatSign::Intended, "intended"}, {HhatSign::PaperCode, "paper-code"}}};
constexpr Names<HhatScope, 2> kScope{
    {{HhatScope::MinibatchOld, "minibatch-old"}, {HhatScope::MicrobatchCurrent, "microbatch-current"}}};
constexpr Names<RouterReplayMode, 3> kReplay{
    {{RouterReplayMode::Rollout, "rollout"}, {RouterReplayMode::Old, "old"}, {RouterReplayMode::Off, "off"}}};

template <typename E, size_t N>
std::string_view name_of(const Names<E, N>& names, E v) {
  for (const auto& [e, s] : names)
    if (e == v) return s;
  FOLDMOE_CHECK(false, "enum value without a name");
}

template <typename E, size_t N>
E parse(const Names<E, N>& names, std::string_view s, std::string_view key) {
  std::string allowed;
  for (const auto& [e, name] : names) {
    if (name == s) return e;
    allowed += allowed.empty() ? "" : " | ";
    allowed += name;
  }
  user_error("config error {}: unknown value \"{}\"\n  fix: use one of {}", key, s, allowed);
}

}  // namespace

std::string_view to_string(RlPreset v) { return name_of(kPreset, v); }
std::string_view to_string(AdvantageEstimator v) { return name_of(kEstimator, v); }
std::string_view to_string(TlgaFallbackScope v) { return name_of(kFallbackScope, v); }
std::string_view to_string(LossAggregation v) { return name_of(kAggregation, v); }
std::string_view to_string(EquivalenceFallback v) { return name_of(kEquivalence, v); }
std::string_view to_string(DynamicSamplingMetric v) { return name_of(kDsMetric, v); }
std::string_view to_string(HhatSign v) { return name_of(kSign, v); }
std::string_view to_string(HhatScope v) { return name_of(kScope, v); }
std::string_view to_string(RouterReplayMode v) { return name_of(kReplay, v); }

RlPreset parse_rl_preset(std::string_view s, std::string_view key) { return parse(kPreset, s, key); }
AdvantageEstimator parse_advantage_estimator(std::string_view s, std::string_view key) {
  return parse(kEstimator, s, key);
}
TlgaFallbackScope parse_tlga_fallback_scope(std::string_view s, std::string_view key) {
  return parse(kFallbackScope, s, key);
}
LossAggregation parse_loss_aggregation(std::string_view s, std::string_view key) {
  return parse(kAggregation, s, key);
}
EquivalenceFallback parse_equivalence_fallback(std::string_view s, std::string_view key) {
  return parse(kEquivalence, s, key);
}
DynamicSamplingMetric parse_dynamic_sampling_metric(std::string_view s, std::string_view key) {
  return parse(kDsMetric, s, key);
}
HhatSign parse_hhat_sign(std::string_view s, std::string_view key) { return parse(kSign, s, key); }
HhatScope parse_hhat_scope(std::string_view s, std::string_view key) { return parse(kScope, s, key); }
RouterReplayMode parse_router_replay_mode(std::string_view s, std::string_view key) {
  return parse(kReplay, s, key);
}

double RlConfig::learning_rate(int64_t k) const {
  if (optim.warmup_steps <= 0) return optim.lr;
  return optim.lr * std::min(1.0, double(k) / double(optim.warmup_steps));
}

void apply_rl_preset(RlConfig& c, RlPreset p) {
  c.preset = p;
  // Shared by every preset (§7.1).
  c.loss.clip_low = 0.2;
  c.loss.dual_clip_c = 10.0;
  c.loss.kl_coef = 0.0;
  c.loss.entropy_coef = 0.0;
  c.advantage.norm_by_std = true;
  c.advantage.eps = 1e-6;
  c.advantage.tlga_fallback_threshold = 5.0;
  c.advantage.tlga_fallback_scope = TlgaFallbackScope::ValidAndZero;
  c.reward.equivalence_fallback = EquivalenceFallback::None;
  c.hapo.entropy_pivot = 0.8;
  c.hapo.hhat_sign = HhatSign::Intended;
  c.hapo.hhat_scope = HhatScope::MinibatchOld;
  c.hapo.ats.tau = 0.05;
  c.hapo.dar.beta = 1.0;
  c.hapo.aac.alpha = 1.0;
  c.dynamic_sampling.metric = DynamicSamplingMetric::Acc;
  c.dynamic_sampling.max_rounds = 10;
  switch (p) {
    case RlPreset::Grpo:
      c.advantage.estimator = AdvantageEstimator::Grpo;
      c.loss.clip_high = 0.2;
      c.loss.aggregation = LossAggregation::SeqMeanTokenMean;
      c.reward.overlong.enabled = false;
      c.hapo.ats.enabled = c.hapo.dar.enabled = c.hapo.aac.enabled = false;
      c.dynamic_sampling.enabled = false;
      break;
    case RlPreset::Dapo:
      c.advantage.estimator = AdvantageEstimator::Grpo;
      c.loss.clip_high = 0.28;
      c.loss.aggregation = LossAggregation::TokenMean;
      c.reward.overlong.enabled = true;
      c.hapo.ats.enabled = c.hapo.dar.enabled = c.hapo.aac.enabled = false;
      c.dynamic_sampling.enabled = true;
      break;
    case RlPreset::Hapo:
    case RlPreset::HapoReleased:
      c.advantage.estimator = AdvantageEstimator::Tlga;
      c.loss.clip_high = 0.28;
      c.loss.aggregation = LossAggregation::TokenMean;
      c.reward.overlong.enabled = true;
      c.hapo.ats.enabled = c.hapo.dar.enabled = c.hapo.aac.enabled = true;
      c.dynamic_sampling.enabled = false;
      if (p == RlPreset::HapoReleased) {
        c.hapo.hhat_sign = HhatSign::PaperCode;
        c.loss.clip_high = 0.2;
        c.hapo.hhat_scope = HhatScope::MicrobatchCurrent;
        c.reward.equivalence_fallback = EquivalenceFallback::Numeric;
      }
      break;
  }
}

RlConfig rl_preset_config(RlPreset p) {
  RlConfig c;
  apply_rl_preset(c, p);
  return c;
}

void validate_rl_config(const RlConfig& c, const RlRunFacts& facts) {
  std::string errors;
  auto fail = [&](std::string_view key, const std::string& what, const std::string& fix) {
    errors += fmt::format("{}config error {}: {}\n  fix: {}", errors.empty() ? "" : "\n", key, what, fix);
  };
  if (c.prompts_per_step < 1) fail("rl.prompts_per_step", fmt::format("P = {} < 1", c.prompts_per_step), "set P >= 1");
  if (c.minibatch_prompts < 1)
    fail("rl.minibatch_prompts", fmt::format("{} < 1", c.minibatch_prompts), "set minibatch_prompts >= 1");
  else if (c.prompts_per_step >= 1 && c.prompts_per_step % c.minibatch_prompts != 0)
    fail("rl.minibatch_prompts",
         fmt::format("prompts_per_step = {} is not divisible by minibatch_prompts = {}", c.prompts_per_step,
                     c.minibatch_prompts),
         "choose minibatch_prompts dividing prompts_per_step");
  if (c.group_size < 1) fail("rl.group_size", fmt::format("n = {} < 1", c.group_size), "set group_size >= 1");
  if (c.ppo_epochs < 1) fail("rl.ppo_epochs", fmt::format("{} < 1", c.ppo_epochs), "set ppo_epochs >= 1");
  if (c.max_prompt_tokens < 1)
    fail("rl.max_prompt_tokens", fmt::format("{} < 1", c.max_prompt_tokens), "set max_prompt_tokens >= 1");
  if (c.max_response_tokens < 1)
    fail("rl.max_response_tokens", fmt::format("{} < 1", c.max_response_tokens), "set max_response_tokens >= 1");
  if (!(c.rollout.temperature > 0))
    fail("rl.rollout.temperature", fmt::format("{} <= 0", c.rollout.temperature), "use a positive temperature");
  if (!(c.rollout.top_p > 0 && c.rollout.top_p <= 1))
    fail("rl.rollout.top_p", fmt::format("{} outside (0, 1]", c.rollout.top_p), "use 0 < top_p <= 1");
  if (c.rollout.top_k && *c.rollout.top_k < 1)
    fail("rl.rollout.top_k", fmt::format("{} < 1", *c.rollout.top_k), "use top_k >= 1 or leave it unset (off)");
  if (!(c.advantage.eps > 0)) fail("rl.advantage.eps", fmt::format("{} <= 0", c.advantage.eps), "use eps > 0");
  if (!(c.loss.clip_low >= 0 && c.loss.clip_low < 1))
    fail("rl.loss.clip_low", fmt::format("{} outside [0, 1)", c.loss.clip_low), "use 0 <= clip_low < 1");
  if (!(c.loss.clip_high >= 0))
    fail("rl.loss.clip_high", fmt::format("{} < 0", c.loss.clip_high), "use clip_high >= 0");
  if (!(c.loss.dual_clip_c == 0 || c.loss.dual_clip_c > 1))
    fail("rl.loss.dual_clip_c", fmt::format("c = {} must be 0 (off) or > 1", c.loss.dual_clip_c),
         "use 0 to disable the dual clip or a value > 1 (default 10)");
  if (!(c.loss.kl_coef >= 0)) fail("rl.loss.kl_coef", fmt::format("{} < 0", c.loss.kl_coef), "use kl_coef >= 0");
  if (c.loss.kl_coef > 0 && !facts.has_reference_checkpoint)
    fail("rl.loss.kl_coef", fmt::format("kl_coef = {} > 0 but no reference checkpoint is given", c.loss.kl_coef),
         "set rl.reference to a checkpoint of the same model (e.g. the --init checkpoint), or kl_coef = 0");
  if (!(c.loss.entropy_coef >= 0))
    fail("rl.loss.entropy_coef",
         fmt::format("{} < 0 (a bonus rewards entropy; a negative one would punish it)", c.loss.entropy_coef),
         "use entropy_coef >= 0 (0 = off, as in every preset)");
  if (c.reward.overlong.enabled) {
    if (c.reward.overlong.buffer_tokens < 1 || c.reward.overlong.buffer_tokens > c.max_response_tokens)
      fail("rl.reward.overlong.buffer_tokens",
           fmt::format("L_cache = {} outside [1, max_response_tokens = {}]", c.reward.overlong.buffer_tokens,
                       c.max_response_tokens),
           "use 1 <= buffer_tokens <= max_response_tokens, or disable rl.reward.overlong");
    if (!(c.reward.overlong.penalty_factor >= 0))
      fail("rl.reward.overlong.penalty_factor", fmt::format("{} < 0", c.reward.overlong.penalty_factor),
           "use penalty_factor >= 0");
  }
  if (c.reward.template_name != "dapo-math")
    fail("rl.reward.template", fmt::format("unknown template \"{}\"", c.reward.template_name), "use dapo-math");
  if (c.dynamic_sampling.gen_prompts_per_round && *c.dynamic_sampling.gen_prompts_per_round < 1)
    fail("rl.dynamic_sampling.gen_prompts_per_round",
         fmt::format("{} < 1", *c.dynamic_sampling.gen_prompts_per_round),
         "use gen_prompts_per_round >= 1 (default 3 * prompts_per_step)");
  if (!(c.hapo.entropy_pivot >= 0 && c.hapo.entropy_pivot <= 1))
    fail("rl.hapo.entropy_pivot", fmt::format("rho = {} outside [0, 1]", c.hapo.entropy_pivot),
         "use 0 <= entropy_pivot <= 1 (default 0.8)");
  if (!(c.hapo.ats.tau >= 0 && c.hapo.ats.tau < 1))
    fail("rl.hapo.ats.tau", fmt::format("tau = {} outside [0, 1): the temperature must stay positive", c.hapo.ats.tau),
         "use 0 <= tau < 1 (default 0.05)");
  if (!(c.hapo.dar.beta >= 0)) fail("rl.hapo.dar.beta", fmt::format("{} < 0", c.hapo.dar.beta), "use beta >= 0");
  if (!(c.hapo.aac.alpha >= 0))
    fail("rl.hapo.aac.alpha", fmt::format("{} < 0", c.hapo.aac.alpha), "use alpha >= 0");
  if (!(c.optim.lr >= 0)) fail("rl.optim.lr", fmt::format("{} < 0", c.optim.lr), "use lr >= 0");
  if (!(c.optim.beta1 >= 0 && c.optim.beta1 < 1 && c.optim.beta2 >= 0 && c.optim.beta2 < 1))
    fail("rl.optim.betas", fmt::format("({}, {}) outside [0, 1)", c.optim.beta1, c.optim.beta2),
         "use betas in [0, 1)");
  if (!(c.optim.grad_clip >= 0))
    fail("rl.optim.grad_clip", fmt::format("{} < 0", c.optim.grad_clip), "use grad_clip >= 0");
  if (c.eval.every < 1) fail("rl.eval.every", fmt::format("{} < 1", c.eval.every), "use every >= 1");
  if (c.eval.samples < 1) fail("rl.eval.samples", fmt::format("{} < 1", c.eval.samples), "use samples >= 1");
  if (!(c.eval.temperature > 0))
    fail("rl.eval.temperature", fmt::format("{} <= 0", c.eval.temperature), "use a positive temperature");
  if (!(c.eval.top_p > 0 && c.eval.top_p <= 1))
    fail("rl.eval.top_p", fmt::format("{} outside (0, 1]", c.eval.top_p), "use 0 < top_p <= 1");
  const RouterReplayMode replay = c.router_replay_mode(facts.model_is_moe);
  if (replay != RouterReplayMode::Off && !facts.model_is_moe)
    fail("rl.router_replay.mode", fmt::format("mode {} needs an MoE model", to_string(replay)),
         "use off for dense models");
  if (replay != RouterReplayMode::Off && facts.moe_has_capacity_factor)
    fail("rl.router_replay.mode", "router replay requires dropless MoE but moe.capacity_factor is set",
         "unset moe.capacity_factor (dropless) or set rl.router_replay.mode = off");
  if (!errors.empty()) throw UserError(errors);
}

}  // namespace foldmoe::rl
