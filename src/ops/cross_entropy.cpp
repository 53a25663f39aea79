#include "ops/cross_entropy.h"

#include <cmath>

#include "core/check.h"

namespace foldmoe::ops {

namespace {

template <typename T>
T row_logsumexp(const T* x, int64_t V) {
  T mx = x[0];
  for (int64_t c = 1; c < V; ++c) mx = x[c] > mx ? x[c] : mx;
  T s = 0;
  for (int64_t c = 0; c < V; ++c) s += std::exp(x[c] - mx);
  return mx + std::log(s);
}

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
    for (int64_t c = 0; c < V; ++c) d[c] = std::exp(x[c] - m) * g;
    d[target[n]] -= g;
  }
}

template void cross_entropy_forward<float>(const float*, const int32_t*, const uint8_t*, float*, float*, int64_t,
                                           int64_t);
template void cross_entropy_forward<double>(const double*, const int32_t*, const uint8_t*, double*, double*,
                                            int64_t, int64_t);
template void cross_entropy_backward<float>(const float*, const int32_t*, const uint8_t*, const float*,
                                            const float*, float*, int64_t, int64_t);
template void cross_entropy_backward<double>(const double*, const int32_t*, const uint8_t*, const double*,
                                             const double*, double*, int64_t, int64_t);

}  // namespace foldmoe::ops
