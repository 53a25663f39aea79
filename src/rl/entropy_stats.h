// Entropy statistics of HAPO (docs/rl.md §3.2, §5.1, §5.7): per-token log-probability and entropy from
// an fp32 logits row, the statistics tuple S = (Q, σ, s₊, s₋) of a token population (STATS) and the
// modulation signal h̃ of one token (HHAT) under the `hhat_sign` switch.
//
// Arithmetic is fp32 as the spec asks; sums over a population (Σ d², the vocabulary sums of one row)
// accumulate in binary64 and are rounded once, so that the result does not depend on the order in
// which tokens are visited (and therefore not on the parallel layout).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

// ---- one logits row (V entries) -------------------------------------------------------------

struct TokenLogProb {
  float logp = 0;     // log π(token) = z′[token] − logsumexp(z′), z′ = z / temperature
  float entropy = 0;  // H = logsumexp(z′) − Σ softmax(z′)·z′ (nats)
  float lse = 0;      // logsumexp(z′), kept for the backward
};

// Numerically stable (max-shifted). temperature = T_base (1 = no division).
TokenLogProb token_logprob_entropy(std::span<const float> logits_V, int32_t token, float temperature = 1.0f);
// Entropy of softmax(z / temperature) alone.
float row_entropy(std::span<const float> logits_V, float temperature = 1.0f);
// d(g · log π(token))/dz_v = g · (1[v = token] − softmax(z′)_v) / temperature, written to dlogits_V
// (overwritten). lse is TokenLogProb::lse of the same row. This is the step a trainer uses to push
// dL/dlogp (from the policy loss) back into the LM head.
void token_logprob_backward(std::span<const float> logits_V, int32_t token, float lse, float dlogp,
                            std::span<float> dlogits_V, float temperature = 1.0f);
// Adds d(g · H)/dz_v = −g · p_v (log p_v + H) / temperature to dlogits_V (accumulates, so call it
// after token_logprob_backward on the same row), with p = softmax(z′), H its entropy and lse as
// above. The entropy bonus (rl.loss.entropy_coef) pushes g = −coef · weight through it.
void token_entropy_backward(std::span<const float> logits_V, float lse, float entropy, float g,
                            std::span<float> dlogits_V, float temperature = 1.0f);

// ---- population statistics (STATS, docs/rl.md §5.1) ---------------------------------------------------

inline constexpr float kEntropyFloorTrain = 1e-8f;    // ε_H on the training side
inline constexpr float kSigmaEpsTrain = 0.0f;         // ε_σ on the training side
inline constexpr float kEntropyFloorSampler = 1e-6f;  // ε_H in the ATS sampler (released value)
inline constexpr float kSigmaEpsSampler = 1e-6f;      // ε_σ in the ATS sampler (released value)

// ℓ = ln(max(H, floor)) in fp32.
float log_entropy(float H, float floor = kEntropyFloorTrain);
// Nearest-rank index round_half_to_even(ρ·(N − 1)), the product in binary64 (N >= 1).
int64_t nearest_rank_index(int64_t n, double rho);

struct EntropyStats {
  float q = 0;        // Q: nearest-rank ρ-quantile of ℓ
  float sigma = 1;    // sqrt(max(Σ(ℓ − Q)²/N, 1e-8))
  float h_max = 0;    // max(max{h > 0}, 1e-8)
  float h_min = 0;    // min(min{h < 0}, −1e-8)
  float s_plus = 0;   // 1 / h_max
  float s_minus = 0;  // 1 / h_min (< 0)
  int64_t count = 0;  // N
  bool operator==(const EntropyStats&) const = default;
};

// STATS over the valid tokens (mask[j] != 0; an empty mask = all valid). N = 0 → absent.
std::optional<EntropyStats> compute_entropy_stats(std::span<const float> entropies, double rho,
                                                  std::span<const uint8_t> mask = {});

// Pieces of STATS for a distributed population: after the exact global quantile Q is known
// (nearest_rank_index over the gathered, sorted ℓ), every rank computes its partial over its own
// tokens, the partials are all-reduced with combine() (sum / max / min), and finish() gives S.
struct EntropyPartial {
  double sum_d2 = 0;       // Σ (ℓ − Q)²
  float d_max_pos = 0;     // largest positive d (0 if none)
  float d_min_neg = 0;     // smallest negative d (0 if none)
  int64_t count = 0;
  void combine(const EntropyPartial& o);
};
EntropyPartial entropy_partial(std::span<const float> entropies, float q, std::span<const uint8_t> mask = {});
EntropyStats finish_entropy_stats(const EntropyPartial& p, float q);

// ---- the modulation signal (HHAT, docs/rl.md §5.1) ----------------------------------------------------

// h = (ln(max(H, floor)) − Q)/(σ + sigma_eps); h̃ = h·s₊ for h > 0; for h <= 0: −h·s₋ (intended,
// h̃ <= 0) or h·s₋ (paper-code, h̃ >= 0); clamped to [−1, 1].
float hhat(float H, const EntropyStats& s, HhatSign sign, float floor = kEntropyFloorTrain,
           float sigma_eps = kSigmaEpsTrain);
// The unscaled score h (for metrics and tests).
float entropy_score(float H, const EntropyStats& s, float floor = kEntropyFloorTrain,
                    float sigma_eps = kSigmaEpsTrain);

// ---- populations (docs/rl.md §5.7) --------------------------------------------------------------------

// h̃ of every token of one population from that population's own statistics (scope
// `minibatch-old`: the stage-4 entropies of one mini-batch; `microbatch-current`: the live
// entropies of one micro-batch). Tokens outside the mask get 0; an empty population gives all 0.
std::vector<float> population_hhat(std::span<const float> entropies, double rho, HhatSign sign,
                                   std::span<const uint8_t> mask = {});

// Scope `minibatch-old` for a whole step: token j belongs to mini-batch minibatch_of[j] (0..M−1,
// or −1 = not a valid token). One STATS per mini-batch from the same (stage-4) entropies, then h̃
// per token. Returns h̃ per token and the M statistics (absent for an empty mini-batch).
struct MinibatchHhat {
  std::vector<float> hhat;
  std::vector<std::optional<EntropyStats>> stats;
};
MinibatchHhat minibatch_old_hhat(std::span<const float> entropies, std::span<const int32_t> minibatch_of,
                                 int32_t num_minibatches, double rho, HhatSign sign);

// The lag of the ATS statistics (docs/rl.md §5.2): S_k, computed from step k's training batch, is what the
// rollout of step k+1 uses. Absent before the first step and after starting from weights alone;
// restored from a checkpoint on resume. Evaluation never changes it.
class AtsStatsLag {
 public:
  // Statistics for the rollout of the coming step (absent = plain sampling).
  const std::optional<EntropyStats>& for_rollout() const { return stats_; }
  // End of stage 5 of step k: S_k over all valid tokens of the training batch.
  void finish_step(std::optional<EntropyStats> s_k) { stats_ = s_k; }
  void restore(std::optional<EntropyStats> s) { stats_ = s; }

 private:
  std::optional<EntropyStats> stats_;
};

}  // namespace foldmoe::rl
