// docs/rl.md §3.2, §5.1, §5.7; worked examples E7, E8.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rl/entropy_stats.h"
#include "rl_test_util.h"

using namespace foldmoe::rl;
using foldmoe::rl::test::near_rel;

namespace {
// E7: response A (6 valid tokens), response B (4 valid + 2 padding).
const std::vector<float> kE7H = {0.9f, 0.02f, 0.3f, 2.4f, 0.005f, 0.06f, 1.5f, 0.15f, 0.6f, 0.01f};
}  // namespace

TEST(RlEntropy, E8NearestRankIndex) {
  EXPECT_EQ(nearest_rank_index(10, 0.8), 7);
  EXPECT_EQ(nearest_rank_index(11, 0.8), 8);
  EXPECT_EQ(nearest_rank_index(12, 0.8), 9);
  EXPECT_EQ(nearest_rank_index(6, 0.5), 2);  // 2.5: half to even
  EXPECT_EQ(nearest_rank_index(8, 0.5), 4);  // 3.5: half to even
  EXPECT_EQ(nearest_rank_index(1, 0.8), 0);
  EXPECT_EQ(nearest_rank_index(1, 0.0), 0);
  EXPECT_EQ(nearest_rank_index(5, 1.0), 4);
  EXPECT_EQ(nearest_rank_index(5, 0.0), 0);
}

TEST(RlEntropy, E7StatisticsStepByStep) {
  // With the two padding positions of response B present and masked out.
  std::vector<float> H = kE7H;
  H.push_back(7.0f);
  H.push_back(0.0f);
  std::vector<uint8_t> mask(12, 1);
  mask[10] = mask[11] = 0;
  const auto s = compute_entropy_stats(H, 0.8, mask);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->count, 10);
  EXPECT_TRUE(near_rel(s->q, -0.105361));
  EXPECT_EQ(s->q, log_entropy(0.9f));
  EXPECT_TRUE(near_rel(s->sigma, 2.7357636));
  EXPECT_TRUE(near_rel(double(s->sigma) * s->sigma * 10, 74.844025));
  EXPECT_TRUE(near_rel(s->h_max, 0.3585212));
  EXPECT_TRUE(near_rel(s->h_min, -1.8981746));
  EXPECT_TRUE(near_rel(s->s_plus, 2.7892353));
  EXPECT_TRUE(near_rel(s->s_minus, -0.5268219));

  const std::vector<double> ell = {-0.105361, -3.912023, -1.203973, 0.875469, -5.298317,
                                   -2.813411, 0.405465,  -1.897120, -0.510826, -4.605170};
  const std::vector<double> h = {0, -1.391444, -0.401574, 0.358521, -1.898175, -0.989870,
                                 0.186721, -0.654939, -0.148209, -1.644809};
  const std::vector<double> intended = {0, -0.733043, -0.211558, 1, -1, -0.521485, 0.520810, -0.345036, -0.078080,
                                        -0.866522};
  for (size_t j = 0; j < 10; ++j) {
    EXPECT_TRUE(near_rel(log_entropy(kE7H[j]), ell[j])) << j;
    EXPECT_TRUE(near_rel(entropy_score(kE7H[j], *s), h[j], 1e-5, 1e-5)) << j;
    EXPECT_TRUE(near_rel(hhat(kE7H[j], *s, HhatSign::Intended), intended[j], 1e-5, 1e-5)) << j;
    EXPECT_TRUE(near_rel(hhat(kE7H[j], *s, HhatSign::PaperCode), std::abs(intended[j]), 1e-5, 1e-5)) << j;
  }
  // population_hhat over the masked population gives the same values, 0 at padding.
  const auto g = population_hhat(H, 0.8, HhatSign::Intended, mask);
  int nonpos = 0;
  for (size_t j = 0; j < 10; ++j) {
    EXPECT_EQ(g[j], hhat(kE7H[j], *s, HhatSign::Intended));
    nonpos += g[j] <= 0;
  }
  EXPECT_EQ(g[10], 0.0f);
  EXPECT_EQ(g[11], 0.0f);
  EXPECT_EQ(nonpos, 8);  // 8 of 10 under `intended`
  const auto gp = population_hhat(H, 0.8, HhatSign::PaperCode, mask);
  int nonpos_p = 0;
  for (size_t j = 0; j < 10; ++j) nonpos_p += gp[j] <= 0;
  EXPECT_EQ(nonpos_p, 1);  // only the token at the quantile under `paper-code`
  EXPECT_EQ(gp[3], 1.0f);
  EXPECT_EQ(gp[4], 1.0f);  // least uncertain token also gets +1
}

TEST(RlEntropy, SigmaIsRmsAroundQuantileNotStd) {
  const auto s = compute_entropy_stats(kE7H, 0.8);
  ASSERT_TRUE(s);
  EXPECT_FALSE(near_rel(s->sigma, 2.0591753, 1e-3));
}

TEST(RlEntropy, EmptyPopulationIsAbsent) {
  EXPECT_FALSE(compute_entropy_stats({}, 0.8).has_value());
  const std::vector<float> H = {1.0f, 2.0f};
  const std::vector<uint8_t> none = {0, 0};
  EXPECT_FALSE(compute_entropy_stats(H, 0.8, none).has_value());
  const auto g = population_hhat(H, 0.8, HhatSign::Intended, none);
  EXPECT_EQ(g, std::vector<float>({0.0f, 0.0f}));
}

TEST(RlEntropy, ExtremesAbsentUseTheBounds) {
  // One token: d = 0, σ = sqrt(1e-8) = 1e-4, no positive or negative h → bounds ±1e-8.
  const std::vector<float> one = {0.5f};
  const auto s = compute_entropy_stats(one, 0.8);
  ASSERT_TRUE(s);
  EXPECT_TRUE(near_rel(s->sigma, 1e-4));
  EXPECT_EQ(s->h_max, 1e-8f);
  EXPECT_EQ(s->h_min, -1e-8f);
  EXPECT_EQ(hhat(0.5f, *s, HhatSign::Intended), 0.0f);
  // Quantile at the top (ρ = 1): no h > 0 in the population; a larger new entropy is clamped to +1.
  const std::vector<float> H = {0.1f, 0.2f, 0.4f};
  const auto t = compute_entropy_stats(H, 1.0);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->h_max, 1e-8f);
  EXPECT_EQ(hhat(0.8f, *t, HhatSign::Intended), 1.0f);
  EXPECT_EQ(hhat(0.1f, *t, HhatSign::Intended), -1.0f);
  // All entropies zero: floor 1e-8 everywhere, d = 0.
  const std::vector<float> zeros = {0.0f, 0.0f, 0.0f};
  const auto z = compute_entropy_stats(zeros, 0.8);
  ASSERT_TRUE(z);
  EXPECT_TRUE(near_rel(z->q, std::log(1e-8)));
  EXPECT_EQ(hhat(0.0f, *z, HhatSign::Intended), 0.0f);
}

TEST(RlEntropy, HhatSignChangesNothingAboveQuantile) {
  const auto s = compute_entropy_stats(kE7H, 0.8);
  for (float H : {1.0f, 1.5f, 2.4f, 10.0f})
    EXPECT_EQ(hhat(H, *s, HhatSign::Intended), hhat(H, *s, HhatSign::PaperCode));
  for (float H : {0.01f, 0.3f, 0.6f})
    EXPECT_EQ(hhat(H, *s, HhatSign::Intended), -hhat(H, *s, HhatSign::PaperCode));
}

TEST(RlEntropy, DistributedPartialsEqualSingleProcess) {
  std::vector<float> H(1000);
  for (size_t j = 0; j < H.size(); ++j) H[j] = float(0.001 + std::fmod(j * 0.6180339887, 1.0) * 3.0);
  const auto whole = compute_entropy_stats(H, 0.8);
  ASSERT_TRUE(whole);
  // Three "ranks" of unequal size; Q known globally.
  EntropyPartial p = entropy_partial(std::span<const float>(H).subspan(0, 100), whole->q);
  p.combine(entropy_partial(std::span<const float>(H).subspan(100, 650), whole->q));
  p.combine(entropy_partial(std::span<const float>(H).subspan(750), whole->q));
  const EntropyStats s = finish_entropy_stats(p, whole->q);
  EXPECT_EQ(s.count, whole->count);
  EXPECT_TRUE(near_rel(s.sigma, whole->sigma, 1e-6));
  EXPECT_EQ(s.h_max, whole->h_max);
  EXPECT_EQ(s.h_min, whole->h_min);
}

TEST(RlEntropy, MinibatchOldScopeUsesOneStatsPerMinibatch) {
  std::vector<float> H = kE7H;
  H.insert(H.end(), {0.3f, 0.3f, 1.0f, 0.01f});
  std::vector<int32_t> mb(H.size(), 0);
  for (size_t j = 10; j < H.size(); ++j) mb[j] = 1;
  mb[2] = -1;  // not a valid token
  const auto r = minibatch_old_hhat(H, mb, 3, 0.8, HhatSign::Intended);
  ASSERT_EQ(r.stats.size(), 3u);
  ASSERT_TRUE(r.stats[0] && r.stats[1]);
  EXPECT_FALSE(r.stats[2]);  // empty mini-batch: absent
  EXPECT_EQ(r.stats[0]->count, 9);
  EXPECT_EQ(r.stats[1]->count, 4);
  EXPECT_EQ(r.hhat[2], 0.0f);
  std::vector<float> b1(H.begin() + 10, H.end());
  const auto s1 = compute_entropy_stats(b1, 0.8);
  for (size_t j = 10; j < H.size(); ++j) EXPECT_EQ(r.hhat[j], hhat(H[j], *s1, HhatSign::Intended));
}

TEST(RlEntropy, AtsStatsLag) {
  AtsStatsLag lag;
  EXPECT_FALSE(lag.for_rollout());  // step 1: plain sampling
  const auto s = compute_entropy_stats(kE7H, 0.8);
  lag.finish_step(s);
  ASSERT_TRUE(lag.for_rollout());
  EXPECT_EQ(*lag.for_rollout(), *s);
  AtsStatsLag resumed;
  resumed.restore(s);
  EXPECT_EQ(*resumed.for_rollout(), *s);
}

namespace {
// binary64 reference of log π(token) and H for a row.
void ref_row(const std::vector<double>& z, int tok, double T, double& logp, double& H) {
  double m = -1e300;
  for (double v : z) m = std::max(m, v / T);
  double s = 0;
  for (double v : z) s += std::exp(v / T - m);
  const double lse = m + std::log(s);
  logp = z[size_t(tok)] / T - lse;
  H = lse;
  for (double v : z) H -= std::exp(v / T - lse) * (v / T);
}
}  // namespace

TEST(RlEntropy, TokenLogProbAndEntropyMatchReferenceAndAreStable) {
  const std::vector<double> zd = {1.5, -0.25, 3.0, 0.0, -2.0, 0.75, 2.5};
  for (double shift : {0.0, 1000.0, -1000.0}) {
    for (float T : {1.0f, 0.7f}) {
      std::vector<float> z(zd.size());
      std::vector<double> zs(zd.size());
      for (size_t v = 0; v < zd.size(); ++v) z[v] = float(zd[v] + shift), zs[v] = double(z[v]);
      double logp, H;
      ref_row(zs, 2, T, logp, H);
      const TokenLogProb t = token_logprob_entropy(z, 2, T);
      EXPECT_TRUE(std::isfinite(t.logp) && std::isfinite(t.entropy));
      EXPECT_NEAR(t.logp, logp, 2e-5 * (1 + std::abs(shift) / T * 1e-3));
      EXPECT_NEAR(t.entropy, H, 2e-5);
      EXPECT_NEAR(row_entropy(z, T), H, 2e-5);
    }
  }
  // Uniform row: H = ln V, log π = −ln V; one-hot-like row: H ≈ 0.
  const std::vector<float> u(8, 0.3f);
  EXPECT_NEAR(token_logprob_entropy(u, 5).entropy, std::log(8.0), 1e-6);
  EXPECT_NEAR(token_logprob_entropy(u, 5).logp, -std::log(8.0), 1e-6);
  const std::vector<float> peaked = {0.0f, 200.0f, 0.0f};
  EXPECT_NEAR(token_logprob_entropy(peaked, 1).entropy, 0.0, 1e-6);
  EXPECT_GE(token_logprob_entropy(peaked, 1).entropy, 0.0f);
}

TEST(RlEntropy, LogProbBackwardMatchesFiniteDifferences) {
  const std::vector<double> zd = {0.4, -1.3, 2.2, 0.1, -0.6};
  for (float T : {1.0f, 0.8f}) {
    std::vector<float> z(zd.begin(), zd.end());
    const int tok = 3;
    const float g = -0.37f;  // dL/dlogp from a policy loss
    const TokenLogProb t = token_logprob_entropy(z, tok, T);
    std::vector<float> dz(z.size());
    token_logprob_backward(z, tok, t.lse, g, dz, T);
    for (size_t v = 0; v < z.size(); ++v) {
      std::vector<double> zp(zd), zm(zd);
      const double h = 1e-6;
      zp[v] += h;
      zm[v] -= h;
      double lp, lm, H;
      ref_row(zp, tok, T, lp, H);
      ref_row(zm, tok, T, lm, H);
      EXPECT_NEAR(dz[v], g * (lp - lm) / (2 * h), 1e-5) << v;
    }
  }
}

// The entropy bonus's gradient: d(g·H)/dz against central differences of H computed in double
// (an independent formula: H = −Σ p log p with p = softmax(z / T)), at T = 1 and T = 0.7; it adds
// to what is already in dlogits.
TEST(RlEntropy, EntropyBackwardMatchesFiniteDifferences) {
  const std::vector<float> z = {0.3f, -1.2f, 2.0f, 0.0f, 0.7f, -3.0f};
  auto entropy = [](const std::vector<double>& zz, double T) {
    double m = -1e300, s = 0, h = 0;
    for (double v : zz) m = std::max(m, v / T);
    for (double v : zz) s += std::exp(v / T - m);
    for (double v : zz) {
      const double p = std::exp(v / T - m) / s;
      h -= p * std::log(p);
    }
    return h;
  };
  for (float T : {1.0f, 0.7f}) {
    const TokenLogProb tl = token_logprob_entropy(z, 2, T);
    const float g = -0.37f;
    std::vector<float> d(z.size(), 0.5f);  // pre-existing gradient: must be kept
    token_entropy_backward(z, tl.lse, tl.entropy, g, d, T);
    for (size_t v = 0; v < z.size(); ++v) {
      std::vector<double> zp(z.begin(), z.end()), zm(z.begin(), z.end());
      const double h = 1e-5;
      zp[v] += h;
      zm[v] -= h;
      const double fd = g * (entropy(zp, T) - entropy(zm, T)) / (2 * h);
      EXPECT_NEAR(d[v] - 0.5f, fd, 1e-5) << "T " << T << " v " << v;
    }
  }
}
