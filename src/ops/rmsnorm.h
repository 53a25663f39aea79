// RMSNorm: y = x / sqrt(mean(x²) + eps) ⊙ w, over the last dimension H.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

// rstd[rows] receives 1/sqrt(mean(x²)+eps) for the backward.
template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t H, double eps);

// dx overwritten; dw accumulated.
template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t H);

}  // namespace foldmoe::ops
