// Adaptive Temperature Sampling, ATS (docs/rl.md §5.2): the per-token sampling temperature of a
// training rollout from the previous step's batch statistics S_{k−1}.
//   T_t = T_base · (1 + τ · h̃),  h̃ = HHAT(H(raw logits), S_{k−1}, sign) with the sampler constants
//   (ε_H = 1e-6, ε_σ = 1e-6), clamped to [−1, 1].
// No statistics (step 1, or a run started from weights alone), ATS off, or evaluation: T_t = T_base.
#pragma once

#include <optional>
#include <span>

#include "config/rl_section.h"
#include "rl/entropy_stats.h"

namespace foldmoe::rl {

struct AtsParams {
  bool enabled = true;
  float t_base = 1.0f;
  float tau = 0.05f;
  HhatSign sign = HhatSign::Intended;
};
AtsParams ats_params(const RlConfig& c);

// Temperature from the entropy H of softmax(raw logits) (temperature 1, after logit processors).
float ats_temperature(float raw_entropy, const std::optional<EntropyStats>& prev_stats, const AtsParams& p);
// Temperature of one decoding row: computes H from the raw logits first (only when it is needed).
float ats_temperature_from_logits(std::span<const float> raw_logits_V,
                                  const std::optional<EntropyStats>& prev_stats, const AtsParams& p);

}  // namespace foldmoe::rl
