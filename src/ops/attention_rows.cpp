// Element-wise passes of the tiled attention (see the header).
//
// The build targets x86-64-v2 (SSE4.2: 4 floats per instruction) for portability, while
// OpenBLAS picks AVX-512 kernels at run time for the tile products. These loops would then take a
// third of the attention's time; GCC's target_clones compiles the float versions a second time
// for AVX-512 and picks the copy the CPU can run when the program loads. This file is compiled
// with -ffp-contract=off (CMakeLists.txt) so that both copies do the same IEEE operations in the
// same order (no fused multiply-adds): the CPU never changes a result.
#include "ops/attention_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/fast_exp.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FOLDMOE_ROWS_CLONES [[gnu::target_clones("avx512f", "default")]]
#else
#define FOLDMOE_ROWS_CLONES
#endif

namespace foldmoe::ops {

namespace {

// exp for the probability tiles: the vectorisable fast_exp (ops/fast_exp.h) in float; double keeps
// std::exp (finite-difference tests).
inline float tile_exp(float x) {
  return fast_exp(x);
}
inline double tile_exp(double x) {
  return std::exp(x);
}

// Reductions with independent partial lanes: a single FP accumulator is a serial dependency the
// compiler may not reorder, lanes let it use SIMD registers.
template <typename T>
inline T lane_sum(const T* x, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
  for (; i < n; ++i) acc[0] += x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
inline T lane_max(const T* x, int64_t n) {
  T acc[8];
  for (int l = 0; l < 8; ++l) acc[l] = -std::numeric_limits<T>::infinity();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] = std::max(acc[l], x[i + l]);
  for (; i < n; ++i) acc[0] = std::max(acc[0], x[i]);
  T m = acc[0];
  for (int l = 1; l < 8; ++l) m = std::max(m, acc[l]);
  return m;
}

// Keys of the tile that row ρ sees (causal).
inline int64_t visible(const ScoreRows& b, int64_t r) {
  return std::min(b.cols, b.first_pos + r / b.heads - b.j0 + 1);
}

// Rows of the block are worked in chunks of kChunk, pass by pass (maxima, rescale factors,
// exponentials and sums, output rescale): each pass is a plain loop that vectorises, where a
// row-at-a-time loop would spend as long on per-row scalar work (the rescale factor's exp, the
// reductions' tails) as on the row's 64 exponentials. A fully visible row takes the fixed-length
// path (n == cols == kFull), which the compiler unrolls without remainder loops.
constexpr int64_t kChunk = 64;
constexpr int64_t kFull = 64;

// Whether a row that sees n keys of the block's tile takes the fixed-length path.
inline bool full_row(const ScoreRows& b, int64_t n) {
  return n == kFull && b.cols == kFull;
}

// lane_sum and lane_max over kFull values: the same lanes and order, a constant trip count.
template <typename T>
[[gnu::always_inline]] inline T lane_sum_full(const T* x) {
  T acc[8] = {};
  for (int64_t i = 0; i < kFull; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
[[gnu::always_inline]] inline T lane_max_full(const T* x) {
  T acc[16];
  for (int l = 0; l < 16; ++l) acc[l] = x[l];
  for (int64_t i = 16; i < kFull; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = std::max(acc[l], x[i + l]);
  T m = acc[0];
  for (int l = 1; l < 16; ++l) m = std::max(m, acc[l]);
  return m;
}

template <typename T>
[[gnu::always_inline]] inline void exp_row(T* p, int64_t n, T mx) {
  for (int64_t c = 0; c < n; ++c) p[c] = tile_exp(p[c] - mx);
}

template <typename T>
[[gnu::always_inline]] inline void online_softmax_impl(T* s, const ScoreRows& b, T* m, T* l, T* o, int64_t D) {
  T mx[kChunk], alpha[kChunk];
  int64_t n[kChunk];
  for (int64_t r0 = 0; r0 < b.rows; r0 += kChunk) {
    const int64_t nr = std::min(kChunk, b.rows - r0);
    for (int64_t r = 0; r < nr; ++r) {
      n[r] = visible(b, r0 + r);
      const T* p = s + (r0 + r) * b.ld;
      mx[r] = std::max(m[r0 + r], full_row(b, n[r]) ? lane_max_full(p) : lane_max(p, n[r]));
    }
    for (int64_t r = 0; r < nr; ++r) alpha[r] = tile_exp(m[r0 + r] - mx[r]);  // 0 on the first tile (m = −inf)
    for (int64_t r = 0; r < nr; ++r) {
      T* p = s + (r0 + r) * b.ld;
      if (full_row(b, n[r])) {
        exp_row(p, kFull, mx[r]);
        l[r0 + r] = l[r0 + r] * alpha[r] + lane_sum_full(p);
      } else {
        exp_row(p, n[r], mx[r]);
        for (int64_t c = n[r]; c < b.cols; ++c) p[c] = 0;
        l[r0 + r] = l[r0 + r] * alpha[r] + lane_sum(p, n[r]);
      }
      m[r0 + r] = mx[r];
    }
    T* orows = o + r0 * D;
    for (int64_t r = 0; r < nr; ++r)
      for (int64_t d = 0; d < D; ++d) orows[r * D + d] *= alpha[r];
  }
}

template <typename T>
[[gnu::always_inline]] inline void grad_row(T* p, T* g, int64_t n, T lq, T di) {
  for (int64_t c = 0; c < n; ++c) {
    p[c] = tile_exp(p[c] - lq);
    g[c] = p[c] * (g[c] - di);
  }
}

template <typename T>
[[gnu::always_inline]] inline void score_grad_impl(T* s, T* dp, const ScoreRows& b, const T* lse, const T* delta) {
  for (int64_t r = 0; r < b.rows; ++r) {
    const int64_t n = visible(b, r);
    T* p = s + r * b.ld;
    T* g = dp + r * b.ld;
    if (full_row(b, n)) {
      grad_row(p, g, kFull, lse[r], delta[r]);
    } else {
      grad_row(p, g, n, lse[r], delta[r]);
      for (int64_t c = n; c < b.cols; ++c) p[c] = g[c] = 0;
    }
  }
}

}  // namespace

FOLDMOE_ROWS_CLONES void online_softmax_rows(float* s, const ScoreRows& b, float* m, float* l, float* o, int64_t D) {
  online_softmax_impl(s, b, m, l, o, D);
}
void online_softmax_rows(double* s, const ScoreRows& b, double* m, double* l, double* o, int64_t D) {
  online_softmax_impl(s, b, m, l, o, D);
}

FOLDMOE_ROWS_CLONES void score_grad_rows(float* s, float* dp, const ScoreRows& b, const float* lse,
                                         const float* delta) {
  score_grad_impl(s, dp, b, lse, delta);
}
void score_grad_rows(double* s, double* dp, const ScoreRows& b, const double* lse, const double* delta) {
  score_grad_impl(s, dp, b, lse, delta);
}

}  // namespace foldmoe::ops
