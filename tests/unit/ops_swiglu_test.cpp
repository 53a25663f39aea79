#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "ops/swiglu.h"

using namespace foldmoe;

TEST(OpsSwiglu, ForwardValues) {
  const std::vector<double> ab = {1.0, -2.0, 0.5, 3.0};  // rows = 1, F = 2: a = {1, −2}, b = {0.5, 3}
  std::vector<double> h(2);
  ops::swiglu_forward(ab.data(), h.data(), 1, 2);
  EXPECT_NEAR(h[0], 1.0 / (1 + std::exp(-1.0)) * 0.5, 1e-15);
  EXPECT_NEAR(h[1], -2.0 / (1 + std::exp(2.0)) * 3.0, 1e-15);
}

TEST(OpsSwiglu, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 4, F = 6;
  auto ab = test::randn(size_t(rows * 2 * F), "ab", 2.0), R = test::randn(size_t(rows * F), "R");
  auto loss = [&] {
    std::vector<double> h(size_t(rows * F));
    ops::swiglu_forward(ab.data(), h.data(), rows, F);
    return test::dot(h, R);
  };
  std::vector<double> dab(ab.size());
  ops::swiglu_backward(ab.data(), R.data(), dab.data(), rows, F);
  EXPECT_LT(test::rel_err(dab, test::numeric_grad(ab, loss)), test::kFdTol);
}

TEST(OpsSwiglu, ScaledFormsMatchPlainOnesWithRowWeights) {
  constexpr int64_t R = 3, F = 11;  // F not a multiple of the SIMD width
  const auto ab64 = test::randn(size_t(R * 2 * F), "ab_scaled", 4.0);
  const auto dh64 = test::randn(size_t(R * F), "dh_scaled", 1.0);
  const std::vector<float> ab(ab64.begin(), ab64.end()), dhp(dh64.begin(), dh64.end()), p = {0.25f, 1.0f, 0.6f};
  std::vector<float> h(R * F), hp(R * F), ref_h(R * F);
  ops::swiglu_forward_scaled(ab.data(), p.data(), h.data(), hp.data(), R, F);
  ops::swiglu_forward(ab.data(), ref_h.data(), R, F);
  EXPECT_EQ(h, ref_h);
  std::vector<float> dh(R * F), dab(R * 2 * F), ref_dab(R * 2 * F);
  for (int64_t i = 0; i < R * F; ++i) {
    EXPECT_EQ(hp[size_t(i)], ref_h[size_t(i)] * p[size_t(i / F)]);
    dh[size_t(i)] = dhp[size_t(i)] * p[size_t(i / F)];
  }
  ops::swiglu_backward_scaled(ab.data(), dhp.data(), p.data(), dab.data(), R, F);
  ops::swiglu_backward(ab.data(), dh.data(), ref_dab.data(), R, F);
  EXPECT_EQ(dab, ref_dab);
}
