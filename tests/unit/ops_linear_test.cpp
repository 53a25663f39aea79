#include <gtest/gtest.h>

#include "grad_check.h"
#include "ops/linear.h"

using namespace foldmoe;
using test::kFdTol;

TEST(OpsLinear, BackwardMatchesFiniteDifferences) {
  const int64_t M = 5, K = 7, N = 4;
  auto x = test::randn(size_t(M * K), "x"), w = test::randn(size_t(N * K), "w"), R = test::randn(size_t(M * N), "R");
  auto loss = [&] {
    std::vector<double> y(size_t(M * N));
    ops::linear_forward(x.data(), w.data(), y.data(), M, K, N);
    return test::dot(y, R);
  };
  std::vector<double> dx(x.size()), dw(w.size(), 0.0);
  ops::linear_backward(x.data(), w.data(), R.data(), dx.data(), dw.data(), M, K, N);
  EXPECT_LT(test::rel_err(dx, test::numeric_grad(x, loss)), kFdTol);
  EXPECT_LT(test::rel_err(dw, test::numeric_grad(w, loss)), kFdTol);
}

TEST(OpsLinear, AccumulateFlags) {
  const int64_t M = 3, K = 4, N = 2;
  auto x = test::randn(size_t(M * K), "x"), w = test::randn(size_t(N * K), "w"), dy = test::randn(size_t(M * N), "dy");
  std::vector<double> y(size_t(M * N), 0.0), y2(size_t(M * N), 1.0);
  ops::linear_forward(x.data(), w.data(), y.data(), M, K, N);
  ops::linear_forward(x.data(), w.data(), y2.data(), M, K, N, /*accumulate=*/true);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(y2[i], y[i] + 1.0, 1e-12);

  std::vector<double> dx(size_t(M * K)), dx2(size_t(M * K), 2.0), dw(size_t(N * K), 0.0), dw2(size_t(N * K), 3.0);
  ops::linear_backward(x.data(), w.data(), dy.data(), dx.data(), dw.data(), M, K, N);
  ops::linear_backward(x.data(), w.data(), dy.data(), dx2.data(), dw2.data(), M, K, N, /*accumulate_dx=*/true);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(dx2[i], dx[i] + 2.0, 1e-12);
  for (size_t i = 0; i < dw.size(); ++i) EXPECT_NEAR(dw2[i], dw[i] + 3.0, 1e-12);
}
