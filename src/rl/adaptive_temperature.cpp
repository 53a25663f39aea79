#include "rl/adaptive_temperature.h"

namespace foldmoe::rl {

AtsParams ats_params(const RlConfig& c) {
  return AtsParams{.enabled = c.hapo.ats.enabled,
                   .t_base = float(c.rollout.temperature),
                   .tau = float(c.hapo.ats.tau),
                   .sign = c.hapo.hhat_sign};
}

float ats_temperature(float raw_entropy, const std::optional<EntropyStats>& prev_stats, const AtsParams& p) {
  if (!p.enabled || !prev_stats) return p.t_base;
  const float g = hhat(raw_entropy, *prev_stats, p.sign, kEntropyFloorSampler, kSigmaEpsSampler);
  return p.t_base * (1.0f + p.tau * g);
}

float ats_temperature_from_logits(std::span<const float> raw_logits_V,
                                  const std::optional<EntropyStats>& prev_stats, const AtsParams& p) {
  if (!p.enabled || !prev_stats) return p.t_base;
  return ats_temperature(row_entropy(raw_logits_V, 1.0f), prev_stats, p);
}

}  // namespace foldmoe::rl
