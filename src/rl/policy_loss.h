// The clipped per-token policy loss of GRPO / DAPO / HAPO (docs/rl.md §3.3, §3.5, §5.4–§5.6) and its
// gradient with respect to the live log-probability log π_θ(o_t) of the sampled token. foldmoe has
// no autograd: a trainer multiplies dloss_dlogp by the aggregation weight (loss_aggregation.h) and
// pushes it through the LM head's log-softmax (token_logprob_backward in entropy_stats.h).
//
// Order for one token (docs/rl.md §5.6): h̃ (constant) → AAC ranges → r from the live log-prob → DAR (reads the
// value of r and the AAC ranges) → ℓ = max(−A′r, −A′·clamp(r, 1 − ε_low(t), 1 + ε_high(t))), and for
// A′ < 0 the dual clip ℓ ← min(ℓ, −c·A′). Detached: A, A′ (with the DAR multiplier and its condition
// on r), h̃, the ranges, log π_old, c. Differentiable: only log π_θ, through r.
//
// The token functions are templates so that tests can run them in binary64; production uses fp32.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

inline constexpr double kLogRatioClamp = 20.0;  // r = exp(clamp(log π_θ − log π_old, −20, 20)), docs/rl.md §3.3

template <typename F>
struct ClipRangeT {
  F low;   // ε_low(t): the interval's lower end is 1 − low
  F high;  // ε_high(t): the interval's upper end is 1 + high
};
using ClipRange = ClipRangeT<float>;

// AAC (docs/rl.md §5.5): ε_low(t) = ε_low(1 − αh̃) for h̃ <= 0; ε_high(t) = ε_high(1 + αh̃) for h̃ > 0.
template <typename F>
ClipRangeT<F> aac_clip_range(F hhat, F eps_low, F eps_high, bool enabled, F alpha) {
  ClipRangeT<F> r{eps_low, eps_high};
  if (!enabled) return r;
  if (hhat > 0)
    r.high = eps_high * (F(1) + alpha * hhat);
  else
    r.low = eps_low * (F(1) - alpha * hhat);
  return r;
}

enum class DarEffect : uint8_t { None, Amplified, Damped };

template <typename F>
struct DarResultT {
  F adv;                   // A′
  bool in_neutral_zone;    // 1 − ε_low(t)/2 < r < 1 + ε_high(t)/2 (open)
  DarEffect effect;        // which way the multiplier (1 + βh̃) was applied (None: A′ = A)
};

// DAR (docs/rl.md §5.4). r is used as a value only.
template <typename F>
DarResultT<F> dar_advantage(F adv, F hhat, F ratio, ClipRangeT<F> range, bool enabled, F beta) {
  const bool in_zone = (F(1) - range.low / F(2) < ratio) && (ratio < F(1) + range.high / F(2));
  if (!enabled) return {adv, in_zone, DarEffect::None};
  const F boosted = adv * (F(1) + beta * hhat);
  if (hhat > 0) {
    if (in_zone) return {adv, in_zone, DarEffect::None};
    return {boosted, in_zone, DarEffect::Amplified};
  }
  if (in_zone) return {boosted, in_zone, DarEffect::Damped};
  return {adv, in_zone, DarEffect::None};
}

enum class ClipState : uint8_t {
  None,       // the unclipped term is active (gradient −A′r), or A′ = 0
  High,       // A′ > 0 and r > 1 + ε_high(t): clipped at the top, no gradient
  Low,        // A′ < 0 and r < 1 − ε_low(t): clipped at the bottom, no gradient
  Dual,       // A′ < 0 and r > c: dual clip, ℓ = c·|A′|, no gradient
  LogRatio,   // |log π_θ − log π_old| > 20: the safety clamp of docs/rl.md §3.3 is active, no gradient
};

template <typename F>
struct TokenLossT {
  F loss = 0;
  F dloss_dlogp = 0;  // ∂ℓ/∂log π_θ(o_t)
  F ratio = 1;
  F adv = 0;          // A′ used by the loss
  ClipState clip = ClipState::None;
};
using TokenLoss = TokenLossT<float>;

template <typename F>
F importance_ratio(F logp, F logp_old) {
  const F d = std::clamp(logp - logp_old, F(-kLogRatioClamp), F(kLogRatioClamp));
  return std::exp(d);
}

// PPO-clip with dual clip (docs/rl.md §3.5) for a given A′ and clip range. dual_c = 0 disables the dual clip.
template <typename F>
TokenLossT<F> clipped_token_loss(F logp, F logp_old, F adv, ClipRangeT<F> range, F dual_c) {
  TokenLossT<F> t;
  const F log_ratio = logp - logp_old;
  t.ratio = importance_ratio(logp, logp_old);
  t.adv = adv;
  const F r = t.ratio;
  const F lo = F(1) - range.low, hi = F(1) + range.high;
  const F u1 = -adv * r;
  const F u2 = -adv * std::clamp(r, lo, hi);
  F u = std::max(u1, u2);
  bool grad = false;
  if (adv > 0) {
    grad = r <= hi;
    if (!grad) t.clip = ClipState::High;
  } else if (adv < 0) {
    if (r < lo) {
      t.clip = ClipState::Low;
    } else if (dual_c > 0 && r > dual_c) {
      t.clip = ClipState::Dual;
    } else {
      grad = true;
    }
    if (dual_c > 0) u = std::min(u, -dual_c * adv);
  }
  t.loss = u;
  if (grad && std::abs(log_ratio) > F(kLogRatioClamp)) {
    grad = false;
    t.clip = ClipState::LogRatio;
  }
  t.dloss_dlogp = grad ? -adv * r : F(0);
  return t;
}

// Everything the per-token loss needs besides the token's own numbers.
struct PolicyLossParams {
  float eps_low = 0.2f;
  float eps_high = 0.28f;
  float dual_c = 10.0f;
  bool aac = false;
  float alpha = 1.0f;
  bool dar = false;
  float beta = 1.0f;
  float kl_coef = 0.0f;  // k3 KL to a frozen reference, docs/rl.md §3.7 (0 = off)
};
// From the config: AAC/DAR switches, α, β, clip ranges, c, kl_coef.
PolicyLossParams policy_loss_params(const RlConfig& c);

template <typename F>
struct HapoTokenT {
  F logp;      // live log π_θ(o_t) (differentiable)
  F logp_old;  // log π_old(o_t)
  F adv;       // A from GRPO or TLGA
  F hhat;      // h̃ (0 when HAPO modulation is off)
};

template <typename F>
struct HapoTokenLossT : TokenLossT<F> {
  ClipRangeT<F> range{};
  bool in_neutral_zone = false;
  DarEffect dar = DarEffect::None;
};
using HapoTokenLoss = HapoTokenLossT<float>;

// The full HAPO per-token loss (docs/rl.md §5.6, §5.8). With aac = dar = false it is the GRPO/DAPO token loss.
template <typename F>
HapoTokenLossT<F> hapo_token_loss(const HapoTokenT<F>& tok, const PolicyLossParams& p) {
  const ClipRangeT<F> range = aac_clip_range<F>(tok.hhat, F(p.eps_low), F(p.eps_high), p.aac, F(p.alpha));
  const F ratio_value = importance_ratio(tok.logp, tok.logp_old);
  const DarResultT<F> d = dar_advantage<F>(tok.adv, tok.hhat, ratio_value, range, p.dar, F(p.beta));
  HapoTokenLossT<F> out;
  static_cast<TokenLossT<F>&>(out) = clipped_token_loss<F>(tok.logp, tok.logp_old, d.adv, range, F(p.dual_c));
  out.range = range;
  out.in_neutral_zone = d.in_neutral_zone;
  out.dar = d.effect;
  return out;
}

// k3 KL estimator per token (docs/rl.md §3.7): β_KL·(e^d − d − 1), d = log π_ref − log π_θ; returns the value
// and ∂/∂log π_θ = β_KL·(1 − e^d).
template <typename F>
struct KlTermT {
  F value;
  F dvalue_dlogp;
};
template <typename F>
KlTermT<F> kl_k3(F logp, F logp_ref, F coef) {
  const F d = std::clamp(logp_ref - logp, F(-kLogRatioClamp), F(kLogRatioClamp));
  const F e = std::exp(d);
  const bool clamped = std::abs(logp_ref - logp) > F(kLogRatioClamp);
  return {coef * (e - d - F(1)), clamped ? F(0) : coef * (F(1) - e)};
}

// ---- a batch of tokens -----------------------------------------------------------------------

// Per-token inputs over the token positions of one micro-batch (padded or packed; positions with
// weight 0 are ignored). adv is per token (broadcast from the response). hhat may be empty (all 0).
// logp_ref may be empty (no KL term); it is required when kl_coef > 0.
struct PolicyLossInputs {
  std::span<const float> logp;
  std::span<const float> logp_old;
  std::span<const float> adv;
  std::span<const float> hhat;
  std::span<const float> weight;  // aggregation weight per token (loss_aggregation.h); 0 = not in the loss
  std::span<const float> logp_ref;
};

// Counters for the docs/rl.md §14 metrics, summable over micro-batches and ranks.
struct PolicyLossCounters {
  int64_t tokens = 0;         // tokens with weight > 0
  int64_t clip_high = 0;      // ClipState::High
  int64_t clip_low = 0;       // ClipState::Low
  int64_t clip_dual = 0;      // ClipState::Dual
  int64_t clip_log_ratio = 0; // ClipState::LogRatio
  int64_t neutral_zone = 0;   // r inside the DAR neutral zone
  int64_t dar_amplified = 0;
  int64_t dar_damped = 0;
  int64_t hhat_nonpositive = 0;
  double sum_ratio = 0;
  double sum_abs_log_ratio = 0;
  double sum_hhat = 0;
  double sum_adv = 0;         // Σ A′
  void add(const PolicyLossCounters& o);
  double frac(int64_t count) const { return tokens > 0 ? double(count) / double(tokens) : 0.0; }
  double mean_ratio() const { return tokens > 0 ? sum_ratio / double(tokens) : 0.0; }
  double mean_abs_log_ratio() const { return tokens > 0 ? sum_abs_log_ratio / double(tokens) : 0.0; }
};

struct PolicyLossResult {
  double loss = 0;                 // Σ weight·ℓ (this micro-batch's contribution to J)
  std::vector<float> dloss_dlogp;  // weight·∂ℓ/∂log π_θ per token position (0 where weight = 0)
  PolicyLossCounters counters;
};

PolicyLossResult policy_loss(const PolicyLossInputs& in, const PolicyLossParams& p);

}  // namespace foldmoe::rl
