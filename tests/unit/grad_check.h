// Helpers for the op tests: deterministic random tensors and central finite differences in
// double precision. A kernel's backward is checked against d<R, f(x)>/dx, where R is a random
// projection of the output, so every output element contributes to the scalar loss.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/rng.h"

namespace foldmoe::test {

template <typename T = double>
std::vector<T> randn(size_t n, std::string_view tag, double scale = 1.0, uint64_t seed = 1234) {
  const CounterRng rng(seed, tag);
  std::vector<T> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = T(scale * rng.normal(i));
  return v;
}

inline double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

// Central differences (L(x+h) − L(x−h)) / 2h for every element of x; `loss` reads x.
// The O(h²) truncation and the O(ε/h) round-off are both ~1e-10 at h = 1e-5 for O(1) data.
template <typename F>
std::vector<double> numeric_grad(std::vector<double>& x, F&& loss, double h = 1e-5) {
  std::vector<double> g(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    const double x0 = x[i];
    x[i] = x0 + h;
    const double lp = loss();
    x[i] = x0 - h;
    const double lm = loss();
    x[i] = x0;
    g[i] = (lp - lm) / (2 * h);
  }
  return g;
}

// max|a − b| / max|b|: one scale for the whole tensor, so tiny entries do not blow it up.
template <typename A, typename B>
double rel_err(const std::vector<A>& a, const std::vector<B>& b) {
  double num = 0, den = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return num / den;
}

constexpr double kFdTol = 1e-6;

}  // namespace foldmoe::test
