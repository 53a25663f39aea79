// Outcome advantages of one group of n responses to the same prompt (docs/rl.md §3.4, §5.3). A is
// constant along a response, so everything here is per response.
//
// Group statistics accumulate in binary64 and each advantage is rounded once to fp32. This is
// within fp32 round-off of the fp32 formulas and guarantees exact zeros for identical rewards of
// any value (an fp32 mean of equal values can be off by an ulp, which ÷1e-6 would blow up).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

struct AdvantageParams {
  AdvantageEstimator estimator = AdvantageEstimator::Tlga;
  double eps = 1e-6;
  bool norm_by_std = true;
  double tlga_fallback_threshold = 5.0;  // <= 0 disables
  TlgaFallbackScope tlga_fallback_scope = TlgaFallbackScope::ValidAndZero;
  // L_max, the length rollouts are padded to (rl.max_response_tokens). The released code's fallback
  // test runs over the group's n × L_max matrix, so padding positions (score 0) exist, and the zero
  // term counts, only when some response is shorter than L_max. Required by TLGA with scope
  // valid-and-zero and a positive threshold.
  int64_t max_response_tokens = 0;
};
AdvantageParams advantage_params(const RlConfig& c);

// GRPO: μ = mean R; s = unbiased std (÷(n−1)); A_i = (R_i − μ)/(s + eps) (or R_i − μ without
// norm_by_std). n = 1: μ = 0, s = 1.
std::vector<float> grpo_advantages(std::span<const float> rewards, double eps = 1e-6, bool norm_by_std = true);

// TLGA with its GRPO fallback. lengths = valid lengths L_i (0 <= L_i <= max_response_tokens).
struct GroupAdvantages {
  std::vector<float> adv;   // per response
  bool fallback = false;    // the GRPO fallback replaced the TLGA values
  double mu_tok = 0;        // length-weighted mean (for metrics and tests)
  double sigma_tok = 0;     // population std over tokens
};
GroupAdvantages tlga_advantages(std::span<const float> rewards, std::span<const int64_t> lengths,
                                const AdvantageParams& p);

// The estimator of p for one group (GRPO ignores lengths).
GroupAdvantages group_advantages(std::span<const float> rewards, std::span<const int64_t> lengths,
                                 const AdvantageParams& p);

// A whole batch laid out group after group (group g = responses [g·n, (g+1)·n)).
struct BatchAdvantages {
  std::vector<float> adv;        // per response
  int64_t fallback_groups = 0;   // TLGA groups that fell back to GRPO
  int64_t identical_groups = 0;  // groups whose rewards are all equal
};
BatchAdvantages batch_advantages(std::span<const float> rewards, std::span<const int64_t> lengths, int group_size,
                                 const AdvantageParams& p);

}  // namespace foldmoe::rl
