#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "ops/rmsnorm.h"

using namespace foldmoe;

TEST(OpsRmsnorm, ForwardValues) {
  const std::vector<double> x = {3.0, 4.0}, w = {1.0, 2.0};
  std::vector<double> y(2), rstd(1);
  ops::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), 1, 2, 1e-6);
  const double r = 1.0 / std::sqrt(12.5 + 1e-6);
  EXPECT_NEAR(rstd[0], r, 1e-15);
  EXPECT_NEAR(y[0], 3.0 * r, 1e-15);
  EXPECT_NEAR(y[1], 8.0 * r, 1e-15);
}

TEST(OpsRmsnorm, BackwardMatchesFiniteDifferences) {
  const int64_t rows = 5, H = 12;
  const double eps = 1e-5;
  auto x = test::randn(size_t(rows * H), "x"), w = test::randn(size_t(H), "w"), R = test::randn(size_t(rows * H), "R");
  auto loss = [&] {
    std::vector<double> y(x.size()), rstd(static_cast<size_t>(rows));
    ops::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), rows, H, eps);
    return test::dot(y, R);
  };
  std::vector<double> y(x.size()), rstd(static_cast<size_t>(rows)), dx(x.size()), dw(w.size(), 0.0);
  ops::rmsnorm_forward(x.data(), w.data(), y.data(), rstd.data(), rows, H, eps);
  ops::rmsnorm_backward(x.data(), w.data(), rstd.data(), R.data(), dx.data(), dw.data(), rows, H);
  EXPECT_LT(test::rel_err(dx, test::numeric_grad(x, loss)), test::kFdTol);
  EXPECT_LT(test::rel_err(dw, test::numeric_grad(w, loss)), test::kFdTol);

  // dw is accumulated (micro-batches sum), dx overwritten.
  std::vector<double> dx2(x.size(), 7.0), dw2(w.size(), 1.0);
  ops::rmsnorm_backward(x.data(), w.data(), rstd.data(), R.data(), dx2.data(), dw2.data(), rows, H);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_DOUBLE_EQ(dx2[i], dx[i]);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], dw[i] + 1.0, 1e-12);
}
