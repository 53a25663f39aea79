#include "rl/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "core/rng.h"

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
  TokenDraw d;
  // T = 1 statistics from the raw logits.
  double mx = -INFINITY;
  int32_t arg = 0;
  for (int64_t v = 0; v < V; ++v)
    if (z[v] > mx) mx = z[v], arg = int32_t(v);
  double s = 0, sz = 0;
  for (int64_t v = 0; v < V; ++v) {
    const double e = std::exp(double(z[v]) - mx);
    s += e;
    sz += e * (double(z[v]) - mx);
  }
  const double lse = mx + std::log(s);
  d.entropy = float(std::log(s) - sz / s);
  double T = sp.temperature;
  if (sp.temperature_fn) T = sp.temperature_fn(d.entropy);
  if (sp.greedy || !(T > 0)) {
    d.token = arg;
    d.temperature = 0;
    d.logprob_sample = 0;
  } else {
    d.temperature = float(T);
    const std::vector<double> q = sampling_distribution(z, V, T, sp.top_k, double(sp.top_p));
    // Inverse CDF in the filter order (probability descending, then lower id). The walk usually ends
    // within the few most likely tokens, so the order is built a block at a time (partial_sort of
    // what is left) instead of sorting the whole vocabulary for every token: the same order, hence
    // the same cumulative sums and the same token for every u.
    std::vector<int32_t> order;
    order.reserve(size_t(V));
    for (int64_t v = 0; v < V; ++v)
      if (q[size_t(v)] > 0) order.push_back(int32_t(v));
    const auto before = [&](int32_t a, int32_t b) {
      const double qa = q[size_t(a)], qb = q[size_t(b)];
      return qa > qb || (qa == qb && a < b);
    };
    double c = 0;
    d.token = -1;
    for (size_t done = 0, block = 64; done < order.size() && d.token < 0; block *= 2) {
      const size_t end = std::min(order.size(), done + block);
      std::partial_sort(order.begin() + std::ptrdiff_t(done), order.begin() + std::ptrdiff_t(end), order.end(), before);
      for (size_t i = done; i < end; ++i) {
        c += q[size_t(order[i])];
        if (u < c) {
          d.token = order[i];
          break;
        }
      }
      done = end;
    }
    if (d.token < 0) d.token = order.back();  // u beyond the summed mass (round-off): the last in filter order
    d.logprob_sample = float(std::log(q[size_t(d.token)]));
  }
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
