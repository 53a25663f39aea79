#include <gtest/gtest.h>

#include <cmath>

#include "grad_check.h"
#include "ops/cross_entropy.h"

using namespace foldmoe;

namespace {
constexpr int64_t kRows = 5, kV = 7;
const std::vector<int32_t> kTarget = {0, 6, 3, 3, 1};
const std::vector<uint8_t> kMask = {1, 0, 1, 1, 0};
}  // namespace

TEST(OpsCrossEntropy, ForwardMatchesNaiveAndIsStable) {
  auto logits = test::randn(size_t(kRows * kV), "logits", 3.0);
  for (int64_t c = 0; c < kV; ++c) logits[size_t(2 * kV + c)] += 1000.0;  // exp would overflow naively
  std::vector<double> loss(static_cast<size_t>(kRows)), lse(static_cast<size_t>(kRows));
  ops::cross_entropy_forward(logits.data(), kTarget.data(), nullptr, loss.data(), lse.data(), kRows, kV);
  for (int64_t n = 0; n < kRows; ++n) {
    const double shift = n == 2 ? 1000.0 : 0.0;
    double s = 0;
    for (int64_t c = 0; c < kV; ++c) s += std::exp(logits[size_t(n * kV + c)] - shift);
    const double ref = std::log(s) + shift - logits[size_t(n * kV + kTarget[size_t(n)])];
    EXPECT_NEAR(loss[size_t(n)], ref, 1e-12);
    EXPECT_TRUE(std::isfinite(loss[size_t(n)]));
  }
}

TEST(OpsCrossEntropy, MaskedRowsGiveZero) {
  auto logits = test::randn<float>(size_t(kRows * kV), "logits", 3.0);
  std::vector<float> loss(size_t(kRows), -1.f), lse(static_cast<size_t>(kRows)), dloss(size_t(kRows), 1.f);
  std::vector<float> dlogits(logits.size(), 5.f);
  ops::cross_entropy_forward(logits.data(), kTarget.data(), kMask.data(), loss.data(), lse.data(), kRows, kV);
  ops::cross_entropy_backward(logits.data(), kTarget.data(), kMask.data(), lse.data(), dloss.data(),
                              dlogits.data(), kRows, kV);
  for (int64_t n = 0; n < kRows; ++n) {
    if (kMask[size_t(n)]) {
      EXPECT_GT(loss[size_t(n)], 0.f);
      continue;
    }
    EXPECT_EQ(loss[size_t(n)], 0.f);
    for (int64_t c = 0; c < kV; ++c) EXPECT_EQ(dlogits[size_t(n * kV + c)], 0.f);
  }
}

TEST(OpsCrossEntropy, BackwardMatchesFiniteDifferences) {
  for (const uint8_t* mask : {static_cast<const uint8_t*>(nullptr), kMask.data()}) {
    auto logits = test::randn(size_t(kRows * kV), "logits", 2.0), dloss = test::randn(size_t(kRows), "dloss");
    std::vector<double> lse(static_cast<size_t>(kRows));
    auto loss = [&] {
      std::vector<double> l(static_cast<size_t>(kRows));
      ops::cross_entropy_forward(logits.data(), kTarget.data(), mask, l.data(), lse.data(), kRows, kV);
      return test::dot(l, dloss);
    };
    loss();  // fills lse at the unperturbed logits
    std::vector<double> dlogits(logits.size());
    ops::cross_entropy_backward(logits.data(), kTarget.data(), mask, lse.data(), dloss.data(), dlogits.data(),
                                kRows, kV);
    EXPECT_LT(test::rel_err(dlogits, test::numeric_grad(logits, loss)), test::kFdTol);

    // In place (dlogits aliasing logits) gives the same result.
    loss();  // numeric_grad left lse at a perturbed point
    auto inplace = logits;
    ops::cross_entropy_backward(inplace.data(), kTarget.data(), mask, lse.data(), dloss.data(), inplace.data(),
                                kRows, kV);
    for (size_t i = 0; i < inplace.size(); ++i) EXPECT_EQ(inplace[i], dlogits[i]);
  }
}

TEST(OpsCrossEntropy, FusedForwardBackwardMatchesSeparateCalls) {
  constexpr int64_t V = 37;  // not a multiple of the 8 SIMD lanes: exercises the tails
  const auto l64 = test::randn(size_t(kRows * V), "logits_fused", 2.0);
  std::vector<float> logits(l64.begin(), l64.end()), dloss = {0.5f, 0.0f, 0.25f, 1.0f, 0.0f};
  std::vector<int32_t> target = {0, 36, 3, 20, 1};
  std::vector<float> loss(kRows), lse(kRows), d(logits.size());
  ops::cross_entropy_forward(logits.data(), target.data(), kMask.data(), loss.data(), lse.data(), kRows, V);
  ops::cross_entropy_backward(logits.data(), target.data(), kMask.data(), lse.data(), dloss.data(), d.data(), kRows,
                              V);
  std::vector<float> floss(kRows), flse(kRows), fd = logits;  // fused runs in place on the logits
  ops::cross_entropy_forward_backward(fd.data(), target.data(), kMask.data(), dloss.data(), floss.data(),
                                      flse.data(), fd.data(), kRows, V);
  EXPECT_EQ(floss, loss);
  EXPECT_EQ(flse, lse);
  EXPECT_EQ(fd, d);
}
