#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "ops/rope.h"

using namespace foldmoe;

namespace {
const std::vector<int32_t> kPos = {0, 1, 7, 300, 4095};
constexpr int64_t kHeads = 3, kD = 8;
constexpr double kTheta = 10000.0;
}  // namespace

// HF rotate-half on one element pair, written out from the formula in rope.h.
TEST(OpsRope, ForwardMatchesFormula) {
  const int64_t rows = int64_t(kPos.size());
  auto x0 = test::randn(size_t(rows * kHeads * kD), "x");
  auto x = x0;
  ops::rope_forward(x.data(), kPos.data(), rows, kHeads, kD, kTheta);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < kHeads; ++h)
      for (int64_t i = 0; i < kD / 2; ++i) {
        const size_t lo = size_t((r * kHeads + h) * kD + i), hi = lo + kD / 2;
        const double a = kPos[size_t(r)] * std::pow(kTheta, -2.0 * double(i) / kD);
        EXPECT_NEAR(x[lo], x0[lo] * std::cos(a) - x0[hi] * std::sin(a), 1e-12);
        EXPECT_NEAR(x[hi], x0[hi] * std::cos(a) + x0[lo] * std::sin(a), 1e-12);
      }
}

TEST(OpsRope, ForwardThenBackwardIsIdentity) {
  const int64_t rows = int64_t(kPos.size());
  auto xd = test::randn(size_t(rows * kHeads * kD), "x");
  auto x = xd;
  ops::rope_forward(x.data(), kPos.data(), rows, kHeads, kD, kTheta);
  ops::rope_backward(x.data(), kPos.data(), rows, kHeads, kD, kTheta);
  EXPECT_LT(test::rel_err(x, xd), 1e-14);

  auto xf = test::randn<float>(xd.size(), "x");
  auto yf = xf;
  ops::rope_forward(yf.data(), kPos.data(), rows, kHeads, kD, kTheta);
  ops::rope_backward(yf.data(), kPos.data(), rows, kHeads, kD, kTheta);
  EXPECT_LT(test::rel_err(yf, xf), 1e-6);
}

TEST(OpsRope, BackwardMatchesFiniteDifferences) {
  const int64_t rows = int64_t(kPos.size());
  auto x = test::randn(size_t(rows * kHeads * kD), "x"), R = test::randn(x.size(), "R");
  auto loss = [&] {
    auto y = x;
    ops::rope_forward(y.data(), kPos.data(), rows, kHeads, kD, kTheta);
    return test::dot(y, R);
  };
  auto dx = R;
  ops::rope_backward(dx.data(), kPos.data(), rows, kHeads, kD, kTheta);
  EXPECT_LT(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
}
