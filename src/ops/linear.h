// Linear layer without bias, HF weight layout: y[M,N] = x[M,K] · W[N,K]ᵀ.
// Forward and backward side by side. Templated on the scalar (float for training, double for the
// finite-difference tests); float and double go to OpenBLAS sgemm/dgemm.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

// y = x·Wᵀ (+ y if accumulate).
template <typename T>
void linear_forward(const T* x, const T* w, T* y, int64_t M, int64_t K, int64_t N, bool accumulate = false);

// dx = dy·W (overwritten, or added if accumulate_dx; skipped if dx == nullptr);
// dw += dyᵀ·x (always accumulated: parameter gradients sum over micro-batches).
template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t M, int64_t K, int64_t N,
                     bool accumulate_dx = false);

// Plain row-major GEMM: C[M,N] = alpha·op(A)·op(B) + beta·C, op = transpose if the flag is set.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
          const T* B, int64_t ldb, T beta, T* C, int64_t ldc);

}  // namespace foldmoe::ops
