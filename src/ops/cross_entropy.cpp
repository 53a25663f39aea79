#include "ops/cross_entropy.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "ops/fast_exp.h"

namespace foldmoe::ops {

namespace {

// Float: 8 independent lanes for the max and the exp-sum (one FP accumulator is a serial chain the
// compiler may not reorder) and the vectorisable fast_exp; libm's expf made this a scalar loop.
// Double keeps the plain serial form with std::exp (finite-difference tests).
float row_logsumexp(const float* x, int64_t V) {
  float mx[8], acc[8] = {};
  for (int l = 0; l < 8; ++l) mx[l] = x[0];
  int64_t c = 0;
  for (; c + 8 <= V; c += 8)
    for (int l = 0; l < 8; ++l) mx[l] = std::max(mx[l], x[c + l]);
  float m = mx[0];
  for (int l = 1; l < 8; ++l) m = std::max(m, mx[l]);
  for (; c < V; ++c) m = std::max(m, x[c]);
  c = 0;
  for (; c + 8 <= V; c += 8)
    for (int l = 0; l < 8; ++l) acc[l] += fast_exp(x[c + l] - m);
  for (; c < V; ++c) acc[0] += fast_exp(x[c] - m);
  const float s = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
  return m + std::log(s);
}

double row_logsumexp(const double* x, int64_t V) {
  double mx = x[0];
  for (int64_t c = 1; c < V; ++c) mx = x[c] > mx ? x[c] : mx;
  double s = 0;
  for (int64_t c = 0; c < V; ++c) s += std::exp(x[c] - mx);
  return mx + std::log(s);
}

inline float exp_of(float x) { return fast_exp(x); }
inline double exp_of(double x) { return std::exp(x); }

}  // namespace

template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* target, const uint8_t* mask, T* loss, T* lse,
                           int64_t rows, int64_t V) {
  for (int64_t n = 0; n < rows; ++n) {
    if (mask && !mask[n]) {
      loss[n] = 0;
      lse[n] = 0;
      continue;
    }
    FOLDMOE_CHECK(target[n] >= 0 && target[n] < V, "target {} out of range [0, {}) at row {}", target[n], V, n);
    const T* x = logits + n * V;
    lse[n] = row_logsumexp(x, V);
    loss[n] = lse[n] - x[target[n]];
  }
}

template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const uint8_t* mask, const T* lse,
                            const T* dloss, T* dlogits, int64_t rows, int64_t V) {
  for (int64_t n = 0; n < rows; ++n) {
    T* d = dlogits + n * V;
    if (mask && !mask[n]) {
      for (int64_t c = 0; c < V; ++c) d[c] = 0;
      continue;
    }
    const T* x = logits + n * V;
    const T g = dloss[n], m = lse[n];
    // Element-wise with the read of x[c] before the write of d[c]: safe when d aliases x.
    for (int64_t c = 0; c < V; ++c) d[c] = exp_of(x[c] - m) * g;
    d[target[n]] -= g;
  }
}

template <typename T>
void cross_entropy_forward_backward(const T* logits, const int32_t* target, const uint8_t* mask, const T* dloss,
                                    T* loss, T* lse, T* dlogits, int64_t rows, int64_t V) {
  for (int64_t n = 0; n < rows; ++n) {
    const uint8_t* m = mask ? mask + n : nullptr;
    cross_entropy_forward(logits + n * V, target + n, m, loss + n, lse + n, 1, V);
    cross_entropy_backward(logits + n * V, target + n, m, lse + n, dloss + n, dlogits + n * V, 1, V);
  }
}

template void cross_entropy_forward_backward<float>(const float*, const int32_t*, const uint8_t*, const float*,
                                                    float*, float*, float*, int64_t, int64_t);
template void cross_entropy_forward_backward<double>(const double*, const int32_t*, const uint8_t*, const double*,
                                                     double*, double*, double*, int64_t, int64_t);
template void cross_entropy_forward<float>(const float*, const int32_t*, const uint8_t*, float*, float*, int64_t,
                                           int64_t);
template void cross_entropy_forward<double>(const double*, const int32_t*, const uint8_t*, double*, double*,
                                            int64_t, int64_t);
template void cross_entropy_backward<float>(const float*, const int32_t*, const uint8_t*, const float*,
                                            const float*, float*, int64_t, int64_t);
template void cross_entropy_backward<double>(const double*, const int32_t*, const uint8_t*, const double*,
                                             const double*, double*, int64_t, int64_t);

}  // namespace foldmoe::ops
