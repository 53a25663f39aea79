#include "rl/advantage.h"

#include <cmath>

#include "core/check.h"

namespace foldmoe::rl {

AdvantageParams advantage_params(const RlConfig& c) {
  return AdvantageParams{.estimator = c.advantage.estimator,
                         .eps = c.advantage.eps,
                         .norm_by_std = c.advantage.norm_by_std,
                         .tlga_fallback_threshold = c.advantage.tlga_fallback_threshold,
                         .tlga_fallback_scope = c.advantage.tlga_fallback_scope,
                         .max_response_tokens = c.max_response_tokens};
}

std::vector<float> grpo_advantages(std::span<const float> rewards, double eps, bool norm_by_std) {
  const size_t n = rewards.size();
  std::vector<float> a(n, 0.0f);
  if (n == 0) return a;
  double mu = 0, s = 1;
  if (n > 1) {
    for (float r : rewards) mu += r;
    mu /= double(n);
    double ss = 0;
    for (float r : rewards) ss += (r - mu) * (r - mu);
    s = std::sqrt(ss / double(n - 1));
  }
  for (size_t i = 0; i < n; ++i) {
    const double d = rewards[i] - mu;
    a[i] = float(norm_by_std ? d / (s + eps) : d);
  }
  return a;
}

GroupAdvantages tlga_advantages(std::span<const float> rewards, std::span<const int64_t> lengths,
                                const AdvantageParams& p) {
  FOLDMOE_CHECK(rewards.size() == lengths.size(), "rewards {} vs lengths {}", rewards.size(), lengths.size());
  const size_t n = rewards.size();
  GroupAdvantages g;
  g.adv.assign(n, 0.0f);
  if (n == 0) return g;
  const bool zero_term_scope =
      p.tlga_fallback_threshold > 0 && p.tlga_fallback_scope == TlgaFallbackScope::ValidAndZero;
  FOLDMOE_CHECK(!zero_term_scope || p.max_response_tokens > 0,
                "TLGA's valid-and-zero fallback needs max_response_tokens (L_max)");
  double tokens = 0, mu = 0;
  bool padded = false;  // some response is shorter than L_max: the n × L_max matrix has padding zeros
  for (size_t i = 0; i < n; ++i) {
    FOLDMOE_CHECK(lengths[i] >= 0, "negative response length");
    FOLDMOE_CHECK(!zero_term_scope || lengths[i] <= p.max_response_tokens, "response length {} > L_max {}", lengths[i],
                  p.max_response_tokens);
    padded = padded || lengths[i] < p.max_response_tokens;
    tokens += double(lengths[i]);
    mu += double(lengths[i]) * rewards[i];
  }
  if (tokens == 0) {  // no valid token at all: nothing to weight by; GRPO values (unused by any loss)
    g.adv = grpo_advantages(rewards, p.eps, p.norm_by_std);
    g.fallback = true;
    return g;
  }
  mu /= tokens;
  double var = 0;
  for (size_t i = 0; i < n; ++i) var += double(lengths[i]) * (rewards[i] - mu) * (rewards[i] - mu);
  const double sigma = std::sqrt(var / tokens);
  g.mu_tok = mu;
  g.sigma_tok = sigma;
  const double denom = p.norm_by_std ? sigma + p.eps : 1.0;
  bool fallback = false;
  const double thr = p.tlga_fallback_threshold;
  for (size_t i = 0; i < n; ++i) {
    const double a = (rewards[i] - mu) / denom;
    g.adv[i] = float(a);
    if (thr > 0 && lengths[i] > 0 && std::abs(a) >= thr) fallback = true;
  }
  if (zero_term_scope && padded && std::abs(0.0 - mu) / denom >= thr) fallback = true;
  if (fallback) {
    g.adv = grpo_advantages(rewards, p.eps, p.norm_by_std);
    g.fallback = true;
  }
  return g;
}

GroupAdvantages group_advantages(std::span<const float> rewards, std::span<const int64_t> lengths,
                                 const AdvantageParams& p) {
  if (p.estimator == AdvantageEstimator::Tlga) return tlga_advantages(rewards, lengths, p);
  GroupAdvantages g;
  g.adv = grpo_advantages(rewards, p.eps, p.norm_by_std);
  return g;
}

BatchAdvantages batch_advantages(std::span<const float> rewards, std::span<const int64_t> lengths, int group_size,
                                 const AdvantageParams& p) {
  FOLDMOE_CHECK(group_size >= 1, "group size {} < 1", group_size);
  FOLDMOE_CHECK(rewards.size() == lengths.size(), "rewards {} vs lengths {}", rewards.size(), lengths.size());
  FOLDMOE_CHECK(rewards.size() % size_t(group_size) == 0, "{} responses are not whole groups of {}",
                rewards.size(), group_size);
  BatchAdvantages out;
  out.adv.reserve(rewards.size());
  for (size_t g0 = 0; g0 < rewards.size(); g0 += size_t(group_size)) {
    const auto r = rewards.subspan(g0, size_t(group_size));
    const auto l = lengths.subspan(g0, size_t(group_size));
    const GroupAdvantages g = group_advantages(r, l, p);
    out.fallback_groups += g.fallback;
    bool identical = true;
    for (float v : r) identical = identical && v == r[0];
    out.identical_groups += identical;
    out.adv.insert(out.adv.end(), g.adv.begin(), g.adv.end());
  }
  return out;
}

}  // namespace foldmoe::rl
