#include "rl/entropy_stats.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"

namespace foldmoe::rl {
namespace {

bool is_valid(std::span<const uint8_t> mask, size_t j) { return mask.empty() || mask[j] != 0; }

struct RowSums {
  float max = 0;
  double sum_exp = 0;     // Σ e^{z′ − m}
  double sum_exp_d = 0;   // Σ e^{z′ − m}·(z′ − m)
};

RowSums row_sums(std::span<const float> z, float temperature) {
  FOLDMOE_CHECK(!z.empty(), "empty logits row");
  const float inv_t = 1.0f / temperature;
  const bool scale = temperature != 1.0f;
  float m = -std::numeric_limits<float>::infinity();
  for (float v : z) m = std::max(m, scale ? v * inv_t : v);
  RowSums r;
  r.max = m;
  for (float v : z) {
    const float d = (scale ? v * inv_t : v) - m;
    const float e = std::exp(d);
    r.sum_exp += e;
    if (e > 0) r.sum_exp_d += double(e) * double(d);
  }
  return r;
}

}  // namespace

TokenLogProb token_logprob_entropy(std::span<const float> logits_V, int32_t token, float temperature) {
  FOLDMOE_CHECK(token >= 0 && size_t(token) < logits_V.size(), "token {} outside vocabulary {}", token,
                logits_V.size());
  const RowSums r = row_sums(logits_V, temperature);
  const float log_s = float(std::log(r.sum_exp));
  const float zt = temperature != 1.0f ? logits_V[size_t(token)] * (1.0f / temperature) : logits_V[size_t(token)];
  TokenLogProb out;
  out.lse = r.max + log_s;
  out.logp = (zt - r.max) - log_s;
  // H = lse − Σ p z′ = log s − Σ p (z′ − m)
  out.entropy = float(std::log(r.sum_exp) - r.sum_exp_d / r.sum_exp);
  out.entropy = std::max(out.entropy, 0.0f);
  return out;
}

float row_entropy(std::span<const float> logits_V, float temperature) {
  const RowSums r = row_sums(logits_V, temperature);
  return std::max(0.0f, float(std::log(r.sum_exp) - r.sum_exp_d / r.sum_exp));
}

void token_logprob_backward(std::span<const float> logits_V, int32_t token, float lse, float dlogp,
                            std::span<float> dlogits_V, float temperature) {
  FOLDMOE_CHECK(dlogits_V.size() == logits_V.size(), "dlogits size {} != logits size {}", dlogits_V.size(),
                logits_V.size());
  FOLDMOE_CHECK(token >= 0 && size_t(token) < logits_V.size(), "token outside vocabulary");
  const float inv_t = 1.0f / temperature;
  const float g = dlogp * inv_t;
  for (size_t v = 0; v < logits_V.size(); ++v) {
    const float p = std::exp(logits_V[v] * inv_t - lse);
    dlogits_V[v] = -g * p;
  }
  dlogits_V[size_t(token)] += g;
}

void token_entropy_backward(std::span<const float> logits_V, float lse, float entropy, float g,
                            std::span<float> dlogits_V, float temperature) {
  FOLDMOE_CHECK(dlogits_V.size() == logits_V.size(), "dlogits size {} != logits size {}", dlogits_V.size(),
                logits_V.size());
  const float inv_t = 1.0f / temperature;
  for (size_t v = 0; v < logits_V.size(); ++v) {
    const float logp = logits_V[v] * inv_t - lse;
    const float p = std::exp(logp);
    // p · log p → 0 as p → 0; exp underflow makes the product exactly 0 then.
    dlogits_V[v] -= g * inv_t * p * (logp + entropy);
  }
}

float log_entropy(float H, float floor) { return std::log(std::max(H, floor)); }

int64_t nearest_rank_index(int64_t n, double rho) {
  FOLDMOE_CHECK(n >= 1, "nearest rank of an empty population");
  const double x = rho * double(n - 1);
  const double fl = std::floor(x);
  const double frac = x - fl;
  int64_t idx = int64_t(fl);
  if (frac > 0.5 || (frac == 0.5 && (idx % 2) != 0)) ++idx;
  return std::clamp<int64_t>(idx, 0, n - 1);
}

void EntropyPartial::combine(const EntropyPartial& o) {
  sum_d2 += o.sum_d2;
  d_max_pos = std::max(d_max_pos, o.d_max_pos);
  d_min_neg = std::min(d_min_neg, o.d_min_neg);
  count += o.count;
}

EntropyPartial entropy_partial(std::span<const float> entropies, float q, std::span<const uint8_t> mask) {
  FOLDMOE_CHECK(mask.empty() || mask.size() == entropies.size(), "mask size");
  EntropyPartial p;
  for (size_t j = 0; j < entropies.size(); ++j) {
    if (!is_valid(mask, j)) continue;
    const float d = log_entropy(entropies[j]) - q;
    p.sum_d2 += double(d) * double(d);
    p.d_max_pos = std::max(p.d_max_pos, d);
    p.d_min_neg = std::min(p.d_min_neg, d);
    ++p.count;
  }
  return p;
}

EntropyStats finish_entropy_stats(const EntropyPartial& p, float q) {
  FOLDMOE_CHECK(p.count > 0, "statistics of an empty population");
  EntropyStats s;
  s.q = q;
  s.count = p.count;
  s.sigma = float(std::sqrt(std::max(p.sum_d2 / double(p.count), 1e-8)));
  // Division by σ > 0 is monotone, so max_j(d_j/σ) = (max_j d_j)/σ exactly in fp32.
  const float hmax = p.d_max_pos > 0 ? p.d_max_pos / s.sigma : 0.0f;
  const float hmin = p.d_min_neg < 0 ? p.d_min_neg / s.sigma : 0.0f;
  s.h_max = std::max(hmax, 1e-8f);
  s.h_min = std::min(hmin, -1e-8f);
  s.s_plus = 1.0f / s.h_max;
  s.s_minus = 1.0f / s.h_min;
  return s;
}

std::optional<EntropyStats> compute_entropy_stats(std::span<const float> entropies, double rho,
                                                  std::span<const uint8_t> mask) {
  FOLDMOE_CHECK(mask.empty() || mask.size() == entropies.size(), "mask size");
  std::vector<float> ell;
  ell.reserve(entropies.size());
  for (size_t j = 0; j < entropies.size(); ++j)
    if (is_valid(mask, j)) ell.push_back(log_entropy(entropies[j]));
  if (ell.empty()) return std::nullopt;
  const int64_t idx = nearest_rank_index(int64_t(ell.size()), rho);
  std::nth_element(ell.begin(), ell.begin() + idx, ell.end());
  const float q = ell[size_t(idx)];
  return finish_entropy_stats(entropy_partial(entropies, q, mask), q);
}

float entropy_score(float H, const EntropyStats& s, float floor, float sigma_eps) {
  return (log_entropy(H, floor) - s.q) / (s.sigma + sigma_eps);
}

float hhat(float H, const EntropyStats& s, HhatSign sign, float floor, float sigma_eps) {
  const float h = entropy_score(H, s, floor, sigma_eps);
  float g;
  if (h > 0)
    g = h * s.s_plus;
  else
    g = sign == HhatSign::PaperCode ? h * s.s_minus : -h * s.s_minus;
  return std::clamp(g, -1.0f, 1.0f);
}

std::vector<float> population_hhat(std::span<const float> entropies, double rho, HhatSign sign,
                                   std::span<const uint8_t> mask) {
  std::vector<float> out(entropies.size(), 0.0f);
  const auto s = compute_entropy_stats(entropies, rho, mask);
  if (!s) return out;
  for (size_t j = 0; j < entropies.size(); ++j)
    if (is_valid(mask, j)) out[j] = hhat(entropies[j], *s, sign);
  return out;
}

MinibatchHhat minibatch_old_hhat(std::span<const float> entropies, std::span<const int32_t> minibatch_of,
                                 int32_t num_minibatches, double rho, HhatSign sign) {
  FOLDMOE_CHECK(minibatch_of.size() == entropies.size(), "minibatch_of size {} != entropies size {}",
                minibatch_of.size(), entropies.size());
  FOLDMOE_CHECK(num_minibatches >= 0, "negative mini-batch count");
  for (int32_t b : minibatch_of)
    FOLDMOE_CHECK(b >= -1 && b < num_minibatches, "token assigned to mini-batch {} of {}", b, num_minibatches);
  MinibatchHhat out;
  out.hhat.assign(entropies.size(), 0.0f);
  out.stats.resize(size_t(num_minibatches));
  std::vector<std::vector<size_t>> members(static_cast<size_t>(num_minibatches));
  for (size_t j = 0; j < entropies.size(); ++j)
    if (minibatch_of[j] >= 0) members[size_t(minibatch_of[j])].push_back(j);
  std::vector<float> pop;
  for (int32_t b = 0; b < num_minibatches; ++b) {
    const auto& idx = members[size_t(b)];
    pop.resize(idx.size());
    for (size_t k = 0; k < idx.size(); ++k) pop[k] = entropies[idx[k]];
    out.stats[size_t(b)] = compute_entropy_stats(pop, rho);
    if (!out.stats[size_t(b)]) continue;
    for (size_t j : idx) out.hhat[j] = hhat(entropies[j], *out.stats[size_t(b)], sign);
  }
  return out;
}

}  // namespace foldmoe::rl
