// docs/rl.md §3.4, §5.3; worked examples E1–E6.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rl/advantage.h"
#include "rl_test_util.h"

using namespace foldmoe::rl;
using foldmoe::rl::test::near_rel;

namespace {
// L_max = 10240 (the E5 setting): every response of the examples below is shorter unless a test
// says otherwise, so the rollouts' padding exists and the zero term takes part.
AdvantageParams tlga(TlgaFallbackScope scope = TlgaFallbackScope::ValidAndZero, double thr = 5.0,
                     int64_t max_response_tokens = 10240) {
  return AdvantageParams{.estimator = AdvantageEstimator::Tlga,
                         .eps = 1e-6,
                         .norm_by_std = true,
                         .tlga_fallback_threshold = thr,
                         .tlga_fallback_scope = scope,
                         .max_response_tokens = max_response_tokens};
}
}  // namespace

TEST(RlAdvantage, E1GrpoUnbiasedStd) {
  const std::vector<float> R = {1, 1, -1, -1, -1, -1, -1, -1};
  const auto A = grpo_advantages(R);
  for (size_t i = 0; i < R.size(); ++i) EXPECT_TRUE(near_rel(A[i], i < 2 ? 1.6201834 : -0.5400611, 1e-6)) << i;
  const auto one = grpo_advantages(std::vector<float>{1.0f});
  EXPECT_TRUE(near_rel(one[0], 0.999999, 1e-6));
  // Dr. GRPO: mean-centred only.
  const auto dr = grpo_advantages(R, 1e-6, false);
  EXPECT_FLOAT_EQ(dr[0], 1.5f);
  EXPECT_FLOAT_EQ(dr[5], -0.5f);
}

TEST(RlAdvantage, E2TlgaReferenceExample) {
  const std::vector<float> R = {1, -1, -1, 1};
  const std::vector<int64_t> L = {100, 400, 300, 200};
  const GroupAdvantages g = tlga_advantages(R, L, tlga());
  EXPECT_FALSE(g.fallback);
  EXPECT_TRUE(near_rel(g.mu_tok, -0.4, 1e-6));
  EXPECT_TRUE(near_rel(g.sigma_tok, 0.9165151, 1e-6));
  EXPECT_TRUE(near_rel(g.adv[0], 1.5275236, 1e-6));
  EXPECT_TRUE(near_rel(g.adv[1], -0.6546530, 1e-6));
  EXPECT_TRUE(near_rel(g.adv[2], -0.6546530, 1e-6));
  EXPECT_TRUE(near_rel(g.adv[3], 1.5275236, 1e-6));
  // Token balance (E16): Σ over valid tokens = 0.
  double sum = 0;
  for (size_t i = 0; i < R.size(); ++i) sum += double(L[i]) * g.adv[i];
  EXPECT_NEAR(sum, 0.0, 1e-3);
  // GRPO on the same group.
  const auto A = grpo_advantages(R);
  for (size_t i = 0; i < R.size(); ++i) EXPECT_TRUE(near_rel(std::abs(A[i]), 0.8660246, 1e-6));
}

TEST(RlAdvantage, E3TlgaFallback) {
  const std::vector<float> R = {1, -1, -1, -1};
  const std::vector<int64_t> L = {20, 1000, 1000, 1000};
  const auto params = tlga();
  AdvantageParams no_fb = params;
  no_fb.tlga_fallback_threshold = 0;
  const GroupAdvantages raw = tlga_advantages(R, L, no_fb);
  EXPECT_FALSE(raw.fallback);
  EXPECT_TRUE(near_rel(raw.mu_tok, -0.98675497, 1e-6));
  EXPECT_TRUE(near_rel(raw.sigma_tok, 0.16221786, 1e-6));
  EXPECT_TRUE(near_rel(raw.adv[0], 12.247373, 1e-6));
  const GroupAdvantages g = tlga_advantages(R, L, params);
  EXPECT_TRUE(g.fallback);
  EXPECT_TRUE(near_rel(g.adv[0], 1.4999985, 1e-6));
  for (int i = 1; i < 4; ++i) EXPECT_TRUE(near_rel(g.adv[size_t(i)], -0.4999995, 1e-6));
}

TEST(RlAdvantage, E4FallbackBoundary) {
  const std::vector<float> R = {1, -1, -1, -1};
  const GroupAdvantages at = tlga_advantages(R, std::vector<int64_t>{100, 800, 800, 900}, tlga());
  EXPECT_FALSE(at.fallback);
  EXPECT_TRUE(near_rel(at.mu_tok, -0.92307692, 1e-6));
  EXPECT_TRUE(near_rel(at.sigma_tok, 0.38461538, 1e-6));
  EXPECT_TRUE(near_rel(at.adv[0], 4.999987, 1e-6));
  EXPECT_TRUE(near_rel(at.adv[1], -0.19999948, 1e-6));
  AdvantageParams no_fb = tlga();
  no_fb.tlga_fallback_threshold = -1;
  const std::vector<int64_t> L99 = {99, 800, 800, 900};
  EXPECT_TRUE(near_rel(tlga_advantages(R, L99, no_fb).adv[0], 5.025176, 1e-6));
  const GroupAdvantages over = tlga_advantages(R, L99, tlga());
  EXPECT_TRUE(over.fallback);
  EXPECT_TRUE(near_rel(over.adv[0], 1.4999985, 1e-6));
  EXPECT_TRUE(near_rel(over.adv[3], -0.4999995, 1e-6));
}

TEST(RlAdvantage, E5ZeroTermOfTheFallback) {
  // All wrong, one response overlong: R = [−1, −1, −1.5, −1].
  const std::vector<float> R = {-1, -1, -1.5f, -1};
  const std::vector<int64_t> L = {500, 600, 8192, 800};
  const GroupAdvantages v = tlga_advantages(R, L, tlga(TlgaFallbackScope::Valid));
  EXPECT_FALSE(v.fallback);
  EXPECT_TRUE(near_rel(v.mu_tok, -1.4058660, 1e-6));
  EXPECT_TRUE(near_rel(v.sigma_tok, 0.1954630, 1e-6));
  const std::vector<double> tl = {2.076424, 2.076424, -0.481592, 2.076424};
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(near_rel(v.adv[i], tl[i], 1e-6)) << i;
  EXPECT_TRUE(near_rel(std::abs(v.mu_tok) / (v.sigma_tok + 1e-6), 7.1925, 1e-4));
  const GroupAdvantages z = tlga_advantages(R, L, tlga(TlgaFallbackScope::ValidAndZero));
  EXPECT_TRUE(z.fallback);
  const std::vector<double> gr = {0.499998, 0.499998, -1.499994, 0.499998};
  for (size_t i = 0; i < 4; ++i) EXPECT_TRUE(near_rel(z.adv[i], gr[i], 1e-6)) << i;
}

// The released code tests |(score − μ)/(σ + ε)| ≥ 5 over the group's n × L_max matrix: with every
// response at L_max there is no padding, so no zero term (issue 16's worked numbers).
TEST(RlAdvantage, ZeroTermOnlyWithPadding) {
  const int64_t lmax = 512;
  {  // n = 2: TLGA ±1, no fallback (the unconditional zero term gave GRPO's ±0.707).
    const std::vector<float> R = {1.108261f, 1.4488282f};
    const GroupAdvantages g = tlga_advantages(R, std::vector<int64_t>{lmax, lmax}, tlga({}, 5.0, lmax));
    EXPECT_FALSE(g.fallback);
    EXPECT_TRUE(near_rel(g.adv[0], -1.0, 1e-4)) << g.adv[0];
    EXPECT_TRUE(near_rel(g.adv[1], 1.0, 1e-4)) << g.adv[1];
    // One response shorter than L_max: the padding zeros exist, |0 − μ|/σ = 7.5 → GRPO.
    const GroupAdvantages p = tlga_advantages(R, std::vector<int64_t>{lmax - 1, lmax}, tlga({}, 5.0, lmax));
    EXPECT_TRUE(p.fallback);
    EXPECT_TRUE(near_rel(p.adv[1], 0.7071068, 1e-5)) << p.adv[1];
  }
  {  // n = 1, reward −3 at L_max: σ = 0 → 0 (the zero term gave GRPO's n = 1 value −3).
    const GroupAdvantages g =
        tlga_advantages(std::vector<float>{-3.0f}, std::vector<int64_t>{lmax}, tlga({}, 5.0, lmax));
    EXPECT_FALSE(g.fallback);
    EXPECT_EQ(g.adv[0], 0.0f);
    const GroupAdvantages p = tlga_advantages(std::vector<float>{-3.0f}, std::vector<int64_t>{7}, tlga({}, 5.0, lmax));
    EXPECT_TRUE(p.fallback);
    EXPECT_TRUE(near_rel(p.adv[0], -3.0 / (1 + 1e-6), 1e-6));  // GRPO with n = 1: μ = 0, s = 1
  }
  {  // n = 16, rewards [−1, −3 × 15] (overlong penalty factor 2), all at L_max → [3.873, −0.258 × 15].
    std::vector<float> R(16, -3.0f);
    R[0] = -1.0f;
    const GroupAdvantages g = tlga_advantages(R, std::vector<int64_t>(16, lmax), tlga({}, 5.0, lmax));
    EXPECT_FALSE(g.fallback);
    EXPECT_TRUE(near_rel(g.adv[0], std::sqrt(15.0), 1e-5)) << g.adv[0];  // 1.875 / sqrt(0.234375)
    for (size_t i = 1; i < 16; ++i) EXPECT_TRUE(near_rel(g.adv[i], -std::sqrt(15.0) / 15, 1e-5)) << i;
    // The former behaviour, GRPO's 3.750 / −0.250, now needs padding.
    std::vector<int64_t> L(16, lmax);
    L[5] = 100;
    const GroupAdvantages p = tlga_advantages(R, L, tlga({}, 5.0, lmax));
    EXPECT_TRUE(p.fallback);
    EXPECT_TRUE(near_rel(p.adv[0], 3.75, 1e-5)) << p.adv[0];
    EXPECT_TRUE(near_rel(p.adv[1], -0.25, 1e-5)) << p.adv[1];
  }
  // A length beyond L_max is a caller bug, not data.
  EXPECT_DEATH(tlga_advantages(std::vector<float>{1, 2}, std::vector<int64_t>{lmax + 1, 3}, tlga({}, 5.0, lmax)),
               "L_max");
}

TEST(RlAdvantage, E6IdenticalRewardsAndEqualLengths) {
  for (float r : {-1.0f, 1.0f, 0.0f, -1.3f, 0.7f}) {
    const std::vector<float> R(4, r);
    const std::vector<int64_t> L = {3, 17, 250, 1};
    const GroupAdvantages g = tlga_advantages(R, L, tlga());
    for (float a : g.adv) EXPECT_EQ(a, 0.0f) << r;
    EXPECT_EQ(g.fallback, r != 0.0f);  // zero term 1/(1e-6) fires unless R = 0
    for (float a : grpo_advantages(R)) EXPECT_EQ(a, 0.0f) << r;
  }
  const std::vector<float> R = {1, -1, -1, -1, 1, -1, -1, -1};
  const std::vector<int64_t> L(8, 100);
  const GroupAdvantages g = tlga_advantages(R, L, tlga());
  EXPECT_FALSE(g.fallback);
  EXPECT_TRUE(near_rel(g.mu_tok, -0.5, 1e-6));
  EXPECT_TRUE(near_rel(g.sigma_tok, 0.8660254, 1e-6));
  const auto A = grpo_advantages(R);
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_TRUE(near_rel(g.adv[i], R[i] > 0 ? 1.7320488 : -0.5773496, 1e-6)) << i;
    EXPECT_TRUE(near_rel(g.adv[i], A[i] * std::sqrt(8.0 / 7.0), 1e-5)) << i;
  }
}

TEST(RlAdvantage, TlgaPropertiesHold) {
  // Closed form for ±1 rewards: A_correct = sqrt((1−p)/p), A_wrong = −sqrt(p/(1−p)).
  const std::vector<float> R = {1, -1, 1, -1, -1};
  const std::vector<int64_t> L = {30, 70, 50, 20, 80};
  const GroupAdvantages g = tlga_advantages(R, L, tlga());
  const double p = 80.0 / 250.0;
  EXPECT_TRUE(near_rel(g.adv[0], std::sqrt((1 - p) / p), 1e-5));
  EXPECT_TRUE(near_rel(g.adv[1], -std::sqrt(p / (1 - p)), 1e-5));
  // Invariance under R → aR + b: {0, 1} rewards give the same advantages as {−1, +1}.
  std::vector<float> R01(R.size());
  for (size_t i = 0; i < R.size(); ++i) R01[i] = R[i] > 0 ? 1.0f : 0.0f;
  const GroupAdvantages g01 = tlga_advantages(R01, L, tlga(TlgaFallbackScope::Valid));
  for (size_t i = 0; i < R.size(); ++i) EXPECT_TRUE(near_rel(g01.adv[i], g.adv[i], 1e-5));
}

TEST(RlAdvantage, SingleResponseAndEmptyLengths) {
  const std::vector<float> R = {1.0f};
  const std::vector<int64_t> L = {42};
  // TLGA of one response: σ_tok = 0; the zero term |R|/1e-6 fires → GRPO with n = 1.
  const GroupAdvantages g = tlga_advantages(R, L, tlga());
  EXPECT_TRUE(g.fallback);
  EXPECT_TRUE(near_rel(g.adv[0], 0.999999, 1e-6));
  EXPECT_EQ(tlga_advantages(R, L, tlga(TlgaFallbackScope::Valid)).adv[0], 0.0f);
  // A response with no valid token cannot trigger the |A| >= 5 test.
  const std::vector<float> R2 = {1, -1, -1, -1};
  const std::vector<int64_t> L2 = {0, 100, 100, 100};
  const GroupAdvantages z = tlga_advantages(R2, L2, tlga(TlgaFallbackScope::Valid));
  EXPECT_FALSE(z.fallback);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ(z.adv[i], 0.0f);
  // No valid token at all: GRPO values.
  const std::vector<int64_t> none = {0, 0, 0, 0};
  const GroupAdvantages n = tlga_advantages(R2, none, tlga());
  EXPECT_TRUE(n.fallback);
  EXPECT_EQ(n.adv, grpo_advantages(R2));
}

TEST(RlAdvantage, BatchOfGroupsAndEstimatorSwitch) {
  const std::vector<float> R = {1, -1, -1, 1, /**/ 1, -1, -1, -1, /**/ -1, -1, -1, -1};
  const std::vector<int64_t> L = {100, 400, 300, 200, 20, 1000, 1000, 1000, 5, 6, 7, 8};
  const BatchAdvantages b = batch_advantages(R, L, 4, tlga());
  ASSERT_EQ(b.adv.size(), 12u);
  EXPECT_EQ(b.fallback_groups, 2);   // E3 group and the identical group (zero term)
  EXPECT_EQ(b.identical_groups, 1);
  EXPECT_TRUE(near_rel(b.adv[0], 1.5275236, 1e-6));
  EXPECT_TRUE(near_rel(b.adv[4], 1.4999985, 1e-6));
  AdvantageParams grpo = tlga();
  grpo.estimator = AdvantageEstimator::Grpo;
  const BatchAdvantages c = batch_advantages(R, L, 4, grpo);
  EXPECT_EQ(c.fallback_groups, 0);
  EXPECT_TRUE(near_rel(c.adv[0], 0.8660246, 1e-6));
  const AdvantageParams fromcfg = advantage_params(rl_preset_config(RlPreset::Dapo));
  EXPECT_EQ(fromcfg.estimator, AdvantageEstimator::Grpo);
}
