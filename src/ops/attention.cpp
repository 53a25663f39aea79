// Tiled causal GQA attention (flash-attention style) on the CPU.
//
// Work is done per (batch b, KV head g): K and V of that sequence are gathered once into
// contiguous [S, D] buffers and shared by the A/G query heads that read them; each query head's
// Q (pre-scaled by 1/sqrt(D)) is gathered the same way. Tile products then go to ops::gemm on
// contiguous operands. Only a kRows × kCols tile of scores/probabilities exists at any time.
// Within a (query tile, key tile) pair, query rows that precede every key of the tile and keys
// that follow every query of the tile are fully masked and are cut from the GEMMs.
#include "ops/attention.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/check.h"
#include "ops/fast_exp.h"
#include "ops/linear.h"

namespace foldmoe::ops {

namespace {

constexpr int64_t kRows = 64;  // queries per tile
constexpr int64_t kCols = 64;  // keys per tile

// exp for the probability tiles: the vectorisable fast_exp (ops/fast_exp.h) in float; double keeps
// std::exp (finite-difference tests).
inline float tile_exp(float x) { return fast_exp(x); }
inline double tile_exp(double x) { return std::exp(x); }

// Reductions with independent partial lanes: a single FP accumulator is a serial dependency the
// compiler may not reorder, lanes let it use SIMD registers.
template <typename T>
T lane_sum(const T* x, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l];
  for (; i < n; ++i) acc[0] += x[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <typename T>
T lane_max(const T* x, int64_t n) {
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

template <typename T>
T lane_dot(const T* x, const T* y, int64_t n) {
  T acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l] * y[i + l];
  for (; i < n; ++i) acc[0] += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// dst[s, :] = scale · src[s·stride, :] for s < S (one head of one sequence made contiguous).
template <typename T>
void gather(const T* src, int64_t stride, int64_t S, int64_t D, T scale, T* dst) {
  for (int64_t s = 0; s < S; ++s) {
    const T* a = src + s * stride;
    T* b = dst + s * D;
    for (int64_t d = 0; d < D; ++d) b[d] = a[d] * scale;
  }
}

template <typename T>
void scatter(const T* src, int64_t S, int64_t D, T* dst, int64_t stride) {
  for (int64_t s = 0; s < S; ++s) std::memcpy(dst + s * stride, src + s * D, size_t(D) * sizeof(T));
}

// The part of the (query tile i0.., key tile j0..) pair that is not fully masked:
// query rows [r0, r1) and keys [j0, j0 + cols). Row q sees keys ≤ q.
struct TilePart {
  int64_t r0, r1, cols;
};
inline TilePart tile_part(int64_t i0, int64_t rows, int64_t j0, int64_t S) {
  const int64_t r1 = i0 + rows;
  return {std::max(i0, j0), r1, std::min({kCols, S - j0, r1 - j0})};
}

// Number of keys of the tile starting at j0 that query q sees (causal), within cols.
inline int64_t visible(int64_t q, int64_t j0, int64_t cols) { return std::min(cols, q - j0 + 1); }

}  // namespace

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* o, T* lse, const AttentionShape& sh) {
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D, heads_per_kv = A / G;
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t q_stride = B * A * D, kv_stride = B * G * D;
  const T scale = T(1) / std::sqrt(T(D));
  std::vector<T> Kc(size_t(S * D)), Vc(size_t(S * D)), Qc(size_t(S * D)), Oc(size_t(S * D));
  std::vector<T> P(size_t(kRows * kCols)), m(static_cast<size_t>(kRows)), l(static_cast<size_t>(kRows));

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < G; ++g) {
      gather(k + (b * G + g) * D, kv_stride, S, D, T(1), Kc.data());
      gather(v + (b * G + g) * D, kv_stride, S, D, T(1), Vc.data());
      for (int64_t h = g * heads_per_kv; h < (g + 1) * heads_per_kv; ++h) {
        gather(q + (b * A + h) * D, q_stride, S, D, scale, Qc.data());
        T* lse_h = lse + (b * A + h) * S;
        for (int64_t i0 = 0; i0 < S; i0 += kRows) {
          const int64_t rows = std::min(kRows, S - i0);
          std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
          std::fill(l.begin(), l.end(), T(0));
          std::fill(Oc.begin() + i0 * D, Oc.begin() + (i0 + rows) * D, T(0));
          for (int64_t j0 = 0; j0 < i0 + rows; j0 += kCols) {
            const TilePart t = tile_part(i0, rows, j0, S);
            const int64_t nr = t.r1 - t.r0;
            // Scores of the live part, then an online-softmax update of (m, l, O) row by row.
            gemm<T>(false, true, nr, t.cols, D, T(1), Qc.data() + t.r0 * D, D, Kc.data() + j0 * D, D, T(0),
                    P.data(), kCols);
            for (int64_t r = 0; r < nr; ++r) {
              const int64_t qi = t.r0 + r, ri = qi - i0, n = visible(qi, j0, t.cols);
              T* p = P.data() + r * kCols;
              const T mx = std::max(m[size_t(ri)], lane_max(p, n));
              const T alpha = tile_exp(m[size_t(ri)] - mx);  // 0 on the first tile (m = −inf)
              for (int64_t c = 0; c < n; ++c) p[c] = tile_exp(p[c] - mx);
              for (int64_t c = n; c < t.cols; ++c) p[c] = 0;
              l[size_t(ri)] = l[size_t(ri)] * alpha + lane_sum(p, n);
              m[size_t(ri)] = mx;
              T* orow = Oc.data() + qi * D;
              for (int64_t d = 0; d < D; ++d) orow[d] *= alpha;
            }
            gemm<T>(false, false, nr, D, t.cols, T(1), P.data(), kCols, Vc.data() + j0 * D, D, T(1),
                    Oc.data() + t.r0 * D, D);
          }
          for (int64_t r = 0; r < rows; ++r) {
            const T inv = T(1) / l[size_t(r)];
            T* orow = Oc.data() + (i0 + r) * D;
            for (int64_t d = 0; d < D; ++d) orow[d] *= inv;
            lse_h[i0 + r] = m[size_t(r)] + std::log(l[size_t(r)]);
          }
        }
        scatter(Oc.data(), S, D, o + (b * A + h) * D, q_stride);
      }
    }
  }
}

// Flash-attention-2 backward. With Qs = Q/sqrt(D) and P = exp(Qs·Kᵀ − lse) recomputed per tile:
//   dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − Δ), Δ_i = Σ_d dO_id·O_id;
//   dQ += dS·K / sqrt(D);  dK += dSᵀ·Qs.
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                        T* dv, const AttentionShape& sh) {
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D, heads_per_kv = A / G;
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t q_stride = B * A * D, kv_stride = B * G * D;
  const T scale = T(1) / std::sqrt(T(D));
  const size_t SD = size_t(S * D);
  std::vector<T> Kc(SD), Vc(SD), dKc(SD), dVc(SD), Qc(SD), dOc(SD), dQc(SD);
  std::vector<T> delta(static_cast<size_t>(S));  // Δ_i per query
  std::vector<T> P(size_t(kRows * kCols)), dP(size_t(kRows * kCols));

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < G; ++g) {
      gather(k + (b * G + g) * D, kv_stride, S, D, T(1), Kc.data());
      gather(v + (b * G + g) * D, kv_stride, S, D, T(1), Vc.data());
      std::fill(dKc.begin(), dKc.end(), T(0));
      std::fill(dVc.begin(), dVc.end(), T(0));
      for (int64_t h = g * heads_per_kv; h < (g + 1) * heads_per_kv; ++h) {
        const int64_t off = (b * A + h) * D;
        gather(q + off, q_stride, S, D, scale, Qc.data());
        gather(dout + off, q_stride, S, D, T(1), dOc.data());
        for (int64_t s = 0; s < S; ++s) delta[size_t(s)] = lane_dot(dOc.data() + s * D, o + off + s * q_stride, D);
        std::fill(dQc.begin(), dQc.end(), T(0));
        const T* lse_h = lse + (b * A + h) * S;
        // Key tiles outer: dK_j, dV_j stay hot while the query tiles that see them stream by.
        for (int64_t j0 = 0; j0 < S; j0 += kCols) {
          for (int64_t i0 = j0 / kRows * kRows; i0 < S; i0 += kRows) {
            const TilePart t = tile_part(i0, std::min(kRows, S - i0), j0, S);
            const int64_t nr = t.r1 - t.r0;
            const T* Qt = Qc.data() + t.r0 * D;
            const T* dOt = dOc.data() + t.r0 * D;
            gemm<T>(false, true, nr, t.cols, D, T(1), Qt, D, Kc.data() + j0 * D, D, T(0), P.data(), kCols);
            gemm<T>(false, true, nr, t.cols, D, T(1), dOt, D, Vc.data() + j0 * D, D, T(0), dP.data(), kCols);
            for (int64_t r = 0; r < nr; ++r) {
              const int64_t qi = t.r0 + r, n = visible(qi, j0, t.cols);
              T* p = P.data() + r * kCols;
              T* dp = dP.data() + r * kCols;  // becomes dS in place
              const T lq = lse_h[qi], di = delta[size_t(qi)];
              for (int64_t c = 0; c < n; ++c) {
                p[c] = tile_exp(p[c] - lq);
                dp[c] = p[c] * (dp[c] - di);
              }
              for (int64_t c = n; c < t.cols; ++c) p[c] = dp[c] = 0;
            }
            gemm<T>(true, false, t.cols, D, nr, T(1), P.data(), kCols, dOt, D, T(1), dVc.data() + j0 * D, D);
            gemm<T>(false, false, nr, D, t.cols, scale, dP.data(), kCols, Kc.data() + j0 * D, D, T(1),
                    dQc.data() + t.r0 * D, D);
            gemm<T>(true, false, t.cols, D, nr, T(1), dP.data(), kCols, Qt, D, T(1), dKc.data() + j0 * D, D);
          }
        }
        scatter(dQc.data(), S, D, dq + off, q_stride);
      }
      scatter(dKc.data(), S, D, dk + (b * G + g) * D, kv_stride);
      scatter(dVc.data(), S, D, dv + (b * G + g) * D, kv_stride);
    }
  }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*,
                                       const AttentionShape&);
template void attention_forward<double>(const double*, const double*, const double*, double*, double*,
                                        const AttentionShape&);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, const AttentionShape&);
template void attention_backward<double>(const double*, const double*, const double*, const double*,
                                         const double*, const double*, double*, double*, double*,
                                         const AttentionShape&);

}  // namespace foldmoe::ops
