#include "rl/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "core/rng.h"
#include "ops/fast_exp.h"

namespace foldmoe::rl {

std::vector<double> sampling_distribution(const float* z, int64_t V, double T, int top_k, double top_p) {
  FOLDMOE_CHECK(T > 0, "sampling_distribution needs T > 0 (got {})", T);
  std::vector<double> p(static_cast<size_t>(V));
  double mx = -INFINITY;
  for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(z[v]) / T);
  double s = 0;
  for (int64_t v = 0; v < V; ++v) s += (p[size_t(v)] = std::exp(double(z[v]) / T - mx));
  for (double& x : p) x /= s;
  const bool use_k = top_k > 0 && top_k < V, use_p = top_p < 1.0;
  if (!use_k && !use_p) return p;
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
  int64_t keep = use_k ? top_k : V;
  if (use_p) {
    double mass = 0;
    for (int64_t i = 0; i < keep; ++i) mass += p[size_t(order[size_t(i)])];
    // Top-p over the top-k renormalised distribution.
    double c = 0;
    int64_t n = 0;
    while (n < keep) {
      c += p[size_t(order[size_t(n)])] / mass;
      ++n;
      if (c >= top_p) break;
    }
    keep = n;
  }
  std::vector<double> q(size_t(V), 0.0);
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += p[size_t(order[size_t(i)])];
  for (int64_t i = 0; i < keep; ++i) q[size_t(order[size_t(i)])] = p[size_t(order[size_t(i)])] / mass;
  return q;
}

TokenDraw sample_token(const float* z, int64_t V, const SamplingParams& sp, double u) {
  TokenSampler sampler;
  return sampler.draw(z, V, sp, u);
}

TokenDraw TokenSampler::draw(const float* z, int64_t V, const SamplingParams& sp, double u) {
  TokenDraw d;
  // Max pass: arg-max (lowest id on ties) and the shift of both softmaxes.
  float mx = -INFINITY;
  int32_t arg = 0;
  for (int64_t v = 0; v < V; ++v)
    if (z[v] > mx) mx = z[v], arg = int32_t(v);
  // Exp pass: the T = 1 weights (kept as the sampling weights when T_t = 1), then the statistics of
  // the raw logits (entropy, log-partition) with partial lanes: the store-only exp loop and the
  // lane sums vectorise, a fused loop with one serial accumulator does not.
  w_.resize(size_t(V));
  double* w = w_.data();
  for (int64_t v = 0; v < V; ++v) w[v] = ops::fast_exp(double(z[v]) - double(mx));
  double ls[4] = {}, lz[4] = {};
  int64_t v = 0;
  for (; v + 4 <= V; v += 4)
    for (int l = 0; l < 4; ++l) {
      ls[l] += w[v + l];
      lz[l] += w[v + l] * (double(z[v + l]) - double(mx));
    }
  for (; v < V; ++v) ls[0] += w[v], lz[0] += w[v] * (double(z[v]) - double(mx));
  const double s = (ls[0] + ls[1]) + (ls[2] + ls[3]), sz = (lz[0] + lz[1]) + (lz[2] + lz[3]);
  const double lse = double(mx) + std::log(s);
  d.entropy = float(std::log(s) - sz / s);
  double T = sp.temperature;
  if (sp.temperature_fn) T = sp.temperature_fn(d.entropy);
  d.logprob_policy = float(double(z[arg]) - lse);
  if (sp.greedy || !(T > 0)) {
    d.token = arg;
    d.temperature = 0;
    d.logprob_sample = 0;
    return d;
  }
  d.temperature = float(T);
  if (T != 1.0)  // second exp pass, at T_t
    for (int64_t i = 0; i < V; ++i) w[i] = ops::fast_exp((double(z[i]) - double(mx)) / T);
  // The kept set is a prefix of the filter order: top-k ends at its k-th token, top-p at the first
  // token where the mass of that (renormalised) prefix reaches top_p; the draw is the first token
  // where the prefix mass exceeds u of the kept mass.
  order_.index(w_.data(), V);
  double kept = order_.total_mass();
  int32_t end = -1;  // the last kept token; -1: the whole order
  if (sp.top_k > 0 && sp.top_k < V) {
    const FilterOrder::Hit k = order_.first(double(sp.top_k), true, true);
    end = k.token, kept = k.mass_through;
  }
  if (sp.top_p < 1.0f) {
    const FilterOrder::Hit p = order_.first(double(sp.top_p) * kept, false, true);
    if (end < 0 || order_.precedes(p.token, end)) end = p.token, kept = p.mass_through;
  }
  FilterOrder::Hit hit = order_.first(u * kept, false, false);
  if (end >= 0 && order_.precedes(end, hit.token)) hit.token = end;  // round-off past the kept prefix
  d.token = hit.token;
  d.logprob_sample = float(std::log(w_[size_t(d.token)] / kept));
  d.logprob_policy = float(double(z[d.token]) - lse);
  return d;
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}
}  // namespace

double sampling_uniform(uint64_t seed, int64_t step, int64_t prompt_id, int64_t sample, int64_t position) {
  // Key: (seed, prompt id) mixed; sub-stream: step; counter: (sample, position).
  const CounterRng rng(seed, fnv1a64("rollout.sample") ^ splitmix64(uint64_t(prompt_id)), uint64_t(step));
  return rng.uniform((uint64_t(sample) << 32) | uint64_t(position));
}

}  // namespace foldmoe::rl
