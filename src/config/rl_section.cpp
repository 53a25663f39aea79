#include "config/rl_section.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <type_traits>
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
constexpr Names<AdvantageEstimator, 2> kEstimator{
    {{AdvantageEstimator::Tlga, "tlga"}, {AdvantageEstimator::Grpo, "grpo"}}};
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

// The spelling table of each enum, found by type.
template <typename E>
constexpr auto& names_of() {
  if constexpr (std::is_same_v<E, RlPreset>)
    return kPreset;
  else if constexpr (std::is_same_v<E, AdvantageEstimator>)
    return kEstimator;
  else if constexpr (std::is_same_v<E, TlgaFallbackScope>)
    return kFallbackScope;
  else if constexpr (std::is_same_v<E, LossAggregation>)
    return kAggregation;
  else if constexpr (std::is_same_v<E, EquivalenceFallback>)
    return kEquivalence;
  else if constexpr (std::is_same_v<E, DynamicSamplingMetric>)
    return kDsMetric;
  else if constexpr (std::is_same_v<E, HhatSign>)
    return kSign;
  else if constexpr (std::is_same_v<E, HhatScope>)
    return kScope;
  else
    return kReplay;
}

}  // namespace

std::string_view to_string(RlPreset v) {
  return name_of(kPreset, v);
}
std::string_view to_string(AdvantageEstimator v) {
  return name_of(kEstimator, v);
}
std::string_view to_string(TlgaFallbackScope v) {
  return name_of(kFallbackScope, v);
}
std::string_view to_string(LossAggregation v) {
  return name_of(kAggregation, v);
}
std::string_view to_string(EquivalenceFallback v) {
  return name_of(kEquivalence, v);
}
std::string_view to_string(DynamicSamplingMetric v) {
  return name_of(kDsMetric, v);
}
std::string_view to_string(HhatSign v) {
  return name_of(kSign, v);
}
std::string_view to_string(HhatScope v) {
  return name_of(kScope, v);
}
std::string_view to_string(RouterReplayMode v) {
  return name_of(kReplay, v);
}

template <typename E>
std::optional<E> parse_enum(std::string_view s) {
  for (const auto& [e, name] : names_of<E>())
    if (name == s) return e;
  return std::nullopt;
}

template <typename E>
std::string enum_choices() {
  std::string out;
  for (const auto& [e, name] : names_of<E>()) out += fmt::format("{}{}", out.empty() ? "" : " | ", name);
  return out;
}

#define FOLDMOE_RL_ENUM(E)                                   \
  template std::optional<E> parse_enum<E>(std::string_view); \
  template std::string enum_choices<E>();
FOLDMOE_RL_ENUM(RlPreset)
FOLDMOE_RL_ENUM(AdvantageEstimator)
FOLDMOE_RL_ENUM(TlgaFallbackScope)
FOLDMOE_RL_ENUM(LossAggregation)
FOLDMOE_RL_ENUM(EquivalenceFallback)
FOLDMOE_RL_ENUM(DynamicSamplingMetric)
FOLDMOE_RL_ENUM(HhatSign)
FOLDMOE_RL_ENUM(HhatScope)
FOLDMOE_RL_ENUM(RouterReplayMode)
#undef FOLDMOE_RL_ENUM

double RlConfig::learning_rate(int64_t k) const {
  if (optim.warmup_steps <= 0) return optim.lr;
  return optim.lr * std::min(1.0, double(k) / double(optim.warmup_steps));
}

void apply_rl_preset(RlConfig& c, RlPreset p) {
  c.preset = p;
  // Shared by every preset.
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

}  // namespace foldmoe::rl
