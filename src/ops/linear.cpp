#include "ops/linear.h"

#include <cblas.h>

#include <vector>

#include "ops/bf16.h"
#include "ops/matmul_precision.h"

namespace foldmoe::ops {

namespace {

// The bf16 product (ops/matmul_precision.h): both operands rounded to bf16, then an fp32 GEMM.
// A product of two bf16 numbers is exact in fp32 (8 + 8 significant bits), so this is a bf16 GEMM
// with fp32 accumulation. It runs on sgemm rather than a kernel of the AVX512-BF16 dot-product
// instruction because on the CPUs we measured, that instruction's throughput is half the FMA's in
// FLOPs (bench/bf16_peak.c): the rounding costs two passes over the operands, the GEMM is sgemm.
void gemm_bf16_operands(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                        int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  thread_local std::vector<float> a_bf16, b_bf16;
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K;
  const int64_t b_rows = tb ? N : K, b_cols = tb ? K : N;
  a_bf16.resize(size_t(a_rows * a_cols));
  b_bf16.resize(size_t(b_rows * b_cols));
  round_to_bf16_rows(A, lda, a_rows, a_cols, a_bf16.data());
  round_to_bf16_rows(B, ldb, b_rows, b_cols, b_bf16.data());
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, a_bf16.data(), int(a_cols), b_bf16.data(), int(b_cols), beta, C, int(ldc));
}

}  // namespace

template <>
void gemm<float>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                 const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (matmul_precision() == MatmulPrecision::BF16 && K > 0) {
    gemm_bf16_operands(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

template <>
void gemm<double>(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
                  const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

template <typename T>
void linear_forward(const T* x, const T* w, T* y, int64_t M, int64_t K, int64_t N, bool accumulate) {
  gemm<T>(false, true, M, N, K, T(1), x, K, w, K, accumulate ? T(1) : T(0), y, N);
}

template <typename T>
void linear_backward(const T* x, const T* w, const T* dy, T* dx, T* dw, int64_t M, int64_t K, int64_t N,
                     bool accumulate_dx) {
  if (dx) gemm<T>(false, false, M, K, N, T(1), dy, N, w, K, accumulate_dx ? T(1) : T(0), dx, K);
  if (dw && M > 0) gemm<T>(true, false, N, K, M, T(1), dy, N, x, K, T(1), dw, K);
}

template void linear_forward<float>(const float*, const float*, float*, int64_t, int64_t, int64_t, bool);
template void linear_forward<double>(const double*, const double*, double*, int64_t, int64_t, int64_t, bool);
template void linear_backward<float>(const float*, const float*, const float*, float*, float*, int64_t, int64_t,
                                     int64_t, bool);
template void linear_backward<double>(const double*, const double*, const double*, double*, double*, int64_t,
                                      int64_t, int64_t, bool);

}  // namespace foldmoe::ops
