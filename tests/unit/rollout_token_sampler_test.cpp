// The fused sampler (TokenSampler: one max pass, one exp pass, bucketed filter-order queries)
// against a straightforward float64 reference: std::exp softmax, the whole vocabulary in filter
// order by a stable sort, top-k and top-p by walking that order, the inverse CDF walked the same
// way. Token for token over random logits of small and large vocabularies, flat and peaked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "ops/fast_exp.h"
#include "rl/filter_order.h"
#include "rl/sampling.h"

using namespace foldmoe;
using namespace foldmoe::rl;

namespace {

struct Ref {
  int32_t token;
  double logprob_sample, logprob_policy, entropy;
};

Ref reference_draw(const std::vector<float>& z, double T, int top_k, double top_p, double u) {
  const int64_t V = int64_t(z.size());
  double mx = -INFINITY;
  for (float x : z) mx = std::max(mx, double(x));
  double s = 0, sz = 0;
  for (float x : z) s += std::exp(double(x) - mx), sz += std::exp(double(x) - mx) * (double(x) - mx);
  Ref r{};
  r.entropy = std::log(s) - sz / s;
  std::vector<double> p(static_cast<size_t>(V));
  double ps = 0;
  for (int64_t v = 0; v < V; ++v) ps += (p[size_t(v)] = std::exp((double(z[size_t(v)]) - mx) / T));
  for (double& x : p) x /= ps;
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return p[size_t(a)] > p[size_t(b)]; });
  int64_t keep = top_k > 0 && top_k < V ? top_k : V;
  double mass = 0;
  for (int64_t i = 0; i < keep; ++i) mass += p[size_t(order[size_t(i)])];
  if (top_p < 1.0) {
    double c = 0;
    int64_t n = 0;
    while (n < keep) {
      c += p[size_t(order[size_t(n)])] / mass;
      ++n;
      if (c >= top_p) break;
    }
    keep = n;
    mass = 0;
    for (int64_t i = 0; i < keep; ++i) mass += p[size_t(order[size_t(i)])];
  }
  double c = 0;
  r.token = order[size_t(keep - 1)];
  for (int64_t i = 0; i < keep; ++i) {
    c += p[size_t(order[size_t(i)])] / mass;
    if (u < c) {
      r.token = order[size_t(i)];
      break;
    }
  }
  r.logprob_sample = std::log(p[size_t(r.token)] / mass);
  r.logprob_policy = double(z[size_t(r.token)]) - (mx + std::log(s));
  return r;
}

std::vector<float> random_logits(int64_t V, float spread, uint32_t seed, int levels = 0) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, spread);
  std::uniform_int_distribution<int> lv(0, std::max(levels, 1));
  std::vector<float> z(static_cast<size_t>(V));
  for (float& x : z) x = levels > 0 ? 0.05f * float(lv(gen)) : nd(gen);  // levels: exact ties
  return z;
}

TEST(TokenSampler, MatchesTheFloat64ReferenceTokenForToken) {
  struct Case {
    int64_t V;
    float spread;
    int levels;
  };
  // Flat (random model), peaked (trained model: spread 6), tied levels, a tiny vocabulary.
  const std::vector<Case> cases = {{2048, 0.3f, 0}, {3000, 6.0f, 0}, {5000, 0, 30}, {7, 1.0f, 0}, {40000, 3.0f, 0}};
  const std::vector<double> temps = {1.0, 0.7, 1.6};
  const std::vector<int> ks = {0, 1, 5, 200};
  const std::vector<double> ps = {1.0, 0.9, 0.3};
  TokenSampler sampler;  // reused across vocabularies and settings: no state may leak between draws
  std::mt19937_64 ug(11);
  std::uniform_real_distribution<double> U(0.0, 1.0);
  int draws = 0;
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const std::vector<float> z = random_logits(cases[ci].V, cases[ci].spread, uint32_t(100 + ci), cases[ci].levels);
    for (double T : temps)
      for (int k : ks)
        for (double p : ps)
          for (int i = 0; i < 12; ++i) {
            const double u = i == 0 ? 0.0 : i == 1 ? 0.9999999999 : U(ug);
            SamplingParams sp;
            sp.temperature = float(T);
            sp.top_k = k;
            sp.top_p = float(p);
            const Ref want = reference_draw(z, double(sp.temperature), k, double(sp.top_p), u);
            const TokenDraw got = sampler.draw(z.data(), cases[ci].V, sp, u);
            ASSERT_EQ(got.token, want.token)
                << "V " << cases[ci].V << " T " << T << " k " << k << " p " << p << " u " << u;
            EXPECT_NEAR(got.logprob_sample, want.logprob_sample, 1e-5 * std::max(1.0, std::abs(want.logprob_sample)));
            EXPECT_NEAR(got.logprob_policy, want.logprob_policy, 1e-5 * std::max(1.0, std::abs(want.logprob_policy)));
            EXPECT_NEAR(got.entropy, want.entropy, 1e-5 * std::max(1.0, want.entropy));
            EXPECT_EQ(got.temperature, sp.temperature);
            const TokenDraw once = sample_token(z.data(), cases[ci].V, sp, u);  // a fresh sampler: same draw
            EXPECT_EQ(once.token, got.token);
            EXPECT_EQ(once.logprob_sample, got.logprob_sample);
            ++draws;
          }
  }
  EXPECT_EQ(draws, 5 * 3 * 4 * 3 * 12);
}

TEST(TokenSampler, EmpiricalFrequenciesFollowTheFilteredDistribution) {
  const std::vector<float> z = random_logits(50, 1.0f, 5);
  SamplingParams sp;
  sp.temperature = 0.8f;
  sp.top_p = 0.8f;
  const std::vector<double> q = sampling_distribution(z.data(), 50, double(sp.temperature), 0, double(sp.top_p));
  TokenSampler sampler;
  std::vector<int> count(50, 0);
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++count[size_t(sampler.draw(z.data(), 50, sp, sampling_uniform(3, 0, 0, i, 0)).token)];
  for (size_t v = 0; v < 50; ++v) {
    if (q[v] == 0) {
      EXPECT_EQ(count[v], 0) << v;
    }
    EXPECT_NEAR(count[v] / double(n), q[v], 4 * std::sqrt(q[v] * (1 - q[v]) / n) + 1e-9) << v;
  }
}

TEST(FilterOrder, CountAndMassQueriesFollowTheOrder) {
  // Weights with ties: order 3 (4), then 0, 2 (2, tie by id), then 4 (1); 1 has weight 0 (never).
  const std::vector<double> w = {2, 0, 2, 4, 1};
  FilterOrder f;
  f.index(w.data(), 5);
  EXPECT_EQ(f.total_mass(), 9.0);
  EXPECT_EQ(f.first(1, true, true).token, 3);
  EXPECT_EQ(f.first(2, true, true).token, 0);
  EXPECT_EQ(f.first(3, true, true).token, 2);
  EXPECT_EQ(f.first(3, true, true).mass_through, 8.0);
  EXPECT_EQ(f.first(4, false, true).token, 3);   // 4 ≥ 4
  EXPECT_EQ(f.first(4, false, false).token, 0);  // 4 > 4 fails; 6 > 4
  EXPECT_EQ(f.first(6.5, false, false).token, 2);
  EXPECT_EQ(f.first(8.5, false, false).token, 4);
  EXPECT_EQ(f.first(100, false, false).token, 4);  // past the whole mass: the last token
  EXPECT_EQ(f.first(100, false, false).mass_through, 9.0);
  EXPECT_TRUE(f.precedes(0, 2));
  EXPECT_FALSE(f.precedes(2, 0));
}

TEST(FastExp, DoubleIsWithinTwoUlpOfLibmAndFlushesBelowDblMin) {
  double worst = 0;
  for (double x = -708.0; x <= 0.0; x += 0.00731) worst = std::max(worst, std::abs(ops::fast_exp(x) / std::exp(x) - 1));
  EXPECT_LT(worst, 4.5e-16);
  EXPECT_EQ(ops::fast_exp(0.0), 1.0);
  EXPECT_EQ(ops::fast_exp(-709.0), 0.0);
  EXPECT_EQ(ops::fast_exp(-INFINITY), 0.0);
}

}  // namespace
