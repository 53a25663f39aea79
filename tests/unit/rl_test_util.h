// Shared helpers of the rl_* unit tests.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

namespace foldmoe::rl::test {

// |a − b| <= rel·max(|b|, floor): the spec's "relative tolerance" (fp32 runs: 1e-5).
inline ::testing::AssertionResult near_rel(double a, double b, double rel = 1e-5, double floor = 1e-6) {
  const double tol = rel * std::max(std::abs(b), floor);
  if (std::abs(a - b) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << a << " vs expected " << b << " (|diff| " << std::abs(a - b)
                                       << " > " << tol << ")";
}

}  // namespace foldmoe::rl::test
