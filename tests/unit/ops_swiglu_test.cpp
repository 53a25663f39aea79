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
