// Token sampling for rollouts: temperature, top-k, top-p, greedy, a per-token temperature hook
// (adaptive temperature sampling, docs/rl.md §5.2) and counter-based draws.
//
// Order (docs/rl.md §2 stage 2): raw fp32 logits z -> T=1 entropy H (raw logits) -> temperature
// T_t (fixed, or hook(H)) -> z / T_t -> top-k -> top-p -> renormalise -> sample. T_t <= 0 or
// `greedy` takes the arg-max of z (lowest index on ties).
// Tie rule of the filters: candidates are ordered by probability, then by lower token id; top-k
// keeps the first k, top-p keeps the shortest prefix whose mass reaches top_p (at least one token).
// A draw maps u ~ U(0,1) through the inverse CDF of the kept tokens in that order.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "rl/filter_order.h"

namespace foldmoe::rl {

struct SamplingParams {
  float temperature = 1.0f;  // <= 0: greedy
  int top_k = 0;             // 0 = off
  float top_p = 1.0f;        // 1 = off
  bool greedy = false;
  // Per-token temperature (ATS): called with the entropy of the T=1 distribution of this position
  // (nats, raw logits); returns T_t, which replaces `temperature` for this token.
  std::function<float(float entropy)> temperature_fn;
};

struct TokenDraw {
  int32_t token = -1;
  float logprob_sample = 0;  // log-prob under the sampling distribution (T_t, top-k, top-p); 0 if greedy
  float logprob_policy = 0;  // log-softmax of the raw logits (T = 1) at the token
  float entropy = 0;         // entropy of softmax(raw logits)
  float temperature = 1;     // T_t used (0 = greedy)
};

// The final sampling distribution (0 off the kept set) for temperature T > 0, top_k, top_p.
std::vector<double> sampling_distribution(const float* logits, int64_t V, double temperature, int top_k, double top_p);

// One token from raw logits [V] with uniform u in (0, 1): a TokenSampler used once.
TokenDraw sample_token(const float* logits, int64_t V, const SamplingParams& p, double u);

// The sampler of a rollout: sample_token with buffers kept across draws. Per draw one max pass and
// one exp pass over the logits (two when T_t ≠ 1: the T = 1 statistics come first, as the ATS hook
// needs them), then FilterOrder (rl/filter_order.h) finds the top-k / top-p boundaries and the drawn
// token without sorting the vocabulary. Weights are float64 (fast_exp), as in
// sampling_distribution, which stays the straightforward reference the tests compare with.
class TokenSampler {
 public:
  TokenDraw draw(const float* logits, int64_t V, const SamplingParams& p, double u);

 private:
  std::vector<double> w_;  // exp((z − max z) / T_t): the unnormalised sampling weights
  FilterOrder order_;
};

// Uniform of one draw keyed by (seed, step, prompt id, sample index, position in the response):
// independent of batching, rank placement and call order.
double sampling_uniform(uint64_t seed, int64_t step, int64_t prompt_id, int64_t sample, int64_t position);

}  // namespace foldmoe::rl
