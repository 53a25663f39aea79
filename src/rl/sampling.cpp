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

namespace {
// The token at which the running mass, in the filter order (probability descending, then lower id),
// first exceeds u; the last token of that order when u is not below the whole mass (round-off).
// A trained model's draw usually ends within its few most likely tokens: those are ordered by a
// partial sort and walked as the definition says. Past them (flat distributions, e.g. early in
// training) the crossing token is found by selection instead of a sort of the vocabulary: split the
// candidates at a pivot into the tokens that precede it and the rest, keep the side that holds u.
// Expected O(V) per draw. The sides' masses are summed in the candidates' storage order (a fixed
// function of the logits, so draws stay reproducible), not in the filter order: a u within
// round-off (~1e-16) of a boundary may pick the neighbouring token of a full-sort walk.
int32_t inverse_cdf_in_filter_order(const std::vector<double>& q, double u) {
  std::vector<int32_t> cand;
  cand.reserve(q.size());
  for (size_t v = 0; v < q.size(); ++v)
    if (q[v] > 0) cand.push_back(int32_t(v));
  const auto precedes = [&](int32_t a, int32_t b) {
    const double qa = q[size_t(a)], qb = q[size_t(b)];
    return qa > qb || (qa == qb && a < b);
  };
  // 1. The head of the order, walked exactly.
  const size_t head = std::min<size_t>(64, cand.size());
  std::partial_sort(cand.begin(), cand.begin() + std::ptrdiff_t(head), cand.end(), precedes);
  double mass = 0;  // of every token known to precede the candidates
  for (size_t i = 0; i < head; ++i) {
    mass += q[size_t(cand[i])];
    if (u < mass) return cand[i];
  }
  cand.erase(cand.begin(), cand.begin() + std::ptrdiff_t(head));
  // 2. Selection over the rest.
  std::vector<int32_t> ahead, behind;
  while (cand.size() > 16) {
    // Median of three (first, middle, last) in the order: a deterministic pivot.
    int32_t a = cand.front(), b = cand[cand.size() / 2], c = cand.back();
    if (precedes(b, a)) std::swap(a, b);
    if (precedes(c, b)) std::swap(b, c);
    if (precedes(b, a)) std::swap(a, b);
    const int32_t pivot = b;
    ahead.clear();
    behind.clear();
    double ahead_mass = 0;
    for (int32_t v : cand) {
      if (v == pivot) continue;
      if (precedes(v, pivot)) {
        ahead.push_back(v);
        ahead_mass += q[size_t(v)];
      } else {
        behind.push_back(v);
      }
    }
    if (u < mass + ahead_mass) {
      cand.swap(ahead);
    } else if (u < mass + ahead_mass + q[size_t(pivot)]) {
      return pivot;
    } else {
      mass += ahead_mass + q[size_t(pivot)];
      cand.swap(behind);
    }
  }
  std::sort(cand.begin(), cand.end(), precedes);
  for (int32_t v : cand) {
    mass += q[size_t(v)];
    if (u < mass) return v;
  }
  // u not below the whole mass (round-off): the last token of the filter order, found only here.
  int32_t last = -1;
  for (size_t v = 0; v < q.size(); ++v)
    if (q[v] > 0 && (last < 0 || precedes(last, int32_t(v)))) last = int32_t(v);
  return last;
}
}  // namespace

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
    d.token = inverse_cdf_in_filter_order(q, u);
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
