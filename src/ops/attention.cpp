// Tiled causal GQA attention (flash-attention style) on the CPU.
//
// Work is done per (batch b, KV head g). K and V of that sequence are gathered once (K, and V for
// the backward's dP, transposed per key tile: see gather_key_tiles); the heads_per_kv query heads
// that read them are gathered together, position-major ([S, heads_per_kv, D]: row
// s·heads_per_kv + h), so that one query tile holds every head of a group and each tile product
// is one GEMM over all of them (fewer, larger calls; the per-call and per-row overheads are paid
// once per group). A query tile is about kTileRows rows (kTileRows / heads_per_kv positions), a
// key tile kCols keys. Only one tile of scores/probabilities exists at a time. Within a (query
// tile, key tile) pair, query rows that precede every key of the tile and keys that follow every
// query of the tile are cut from the GEMMs; the element-wise passes are in
// ops/attention_rows.cpp. Measurements: docs/dense-parallel.md §4.6.
//
// The key tile (kCols) and the order of the key tiles fix where bf16 mixed precision rounds the
// forward's unnormalised probabilities (relative to the running maximum); the PyTorch reference
// models exactly that (tests/reference/foldmoe_ref.py, _Bf16Attention.KEY_TILE). The query tile
// and the backward's tiles do not change a rounding.
#include "ops/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/check.h"
#include "ops/attention_rows.h"
#include "ops/linear.h"

namespace foldmoe::ops {

namespace {

constexpr int64_t kTileRows = 256;  // query rows (positions × stacked heads) per tile, about
constexpr int64_t kCols = 64;       // keys per forward tile (bf16 reference: KEY_TILE)
constexpr int64_t kBwdCols = 64;    // keys per backward tile

// dst[s, :] = scale · src[s·stride, :W] for s < S (one group of heads of one sequence made contiguous).
template <typename T>
void gather(const T* src, int64_t stride, int64_t S, int64_t W, T scale, T* dst) {
  for (int64_t s = 0; s < S; ++s) {
    const T* a = src + s * stride;
    T* b = dst + s * W;
    for (int64_t d = 0; d < W; ++d) b[d] = a[d] * scale;
  }
}

// K (or V) of one KV head, transposed per key tile: dst[t][d][c] = src[(t·tile + c)·stride + d], with
// columns past S zero. The score product Q·Kᵀ of key tile t then reads a compact [D, tile] block
// as a plain (non-transposed) operand; sgemm runs that form about 1.5× faster at D = 32 than
// Q·Kᵀ on the [tile, D] rows (measured: 121 vs 82 GFLOP/s for 256 × 64 × 32).
template <typename T>
void gather_key_tiles(const T* src, int64_t stride, int64_t S, int64_t D, int64_t tile, T* dst) {
  for (int64_t t0 = 0; t0 < S; t0 += tile) {
    T* blk = dst + t0 * D;
    const int64_t n = std::min(tile, S - t0);
    for (int64_t c = 0; c < n; ++c) {
      const T* a = src + (t0 + c) * stride;
      for (int64_t d = 0; d < D; ++d) blk[d * tile + c] = a[d];
    }
    for (int64_t d = 0; d < D; ++d) std::fill(blk + d * tile + n, blk + (d + 1) * tile, T(0));
  }
}

// Length of a key-tiled buffer: S rounded up to whole tiles, times D.
inline size_t tiled_size(int64_t S, int64_t D, int64_t tile) {
  return size_t((S + tile - 1) / tile * tile * D);
}

template <typename T>
void scatter(const T* src, int64_t S, int64_t W, T* dst, int64_t stride) {
  for (int64_t s = 0; s < S; ++s) std::memcpy(dst + s * stride, src + s * W, size_t(W) * sizeof(T));
}

// Query positions per tile: kTileRows rows of stacked heads, at least one position.
inline int64_t tile_positions(int64_t heads_per_kv) {
  return std::max<int64_t>(1, kTileRows / heads_per_kv);
}

}  // namespace

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* o, T* lse, const AttentionShape& sh) {
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D;
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t H = A / G, W = H * D, q_stride = B * A * D, kv_stride = B * G * D, TP = tile_positions(H);
  const T scale = T(1) / std::sqrt(T(D));
  std::vector<T> KT(tiled_size(S, D, kCols)), Vc(size_t(S * D)), Qc(size_t(S * W)), Oc(size_t(S * W));
  std::vector<T> P(size_t(TP * H * kCols)), m(size_t(TP * H)), l(size_t(TP * H));

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < G; ++g) {
      gather_key_tiles(k + (b * G + g) * D, kv_stride, S, D, kCols, KT.data());
      gather(v + (b * G + g) * D, kv_stride, S, D, T(1), Vc.data());
      gather(q + (b * A + g * H) * D, q_stride, S, W, scale, Qc.data());
      for (int64_t i0 = 0; i0 < S; i0 += TP) {
        const int64_t i1 = std::min(S, i0 + TP), rows = (i1 - i0) * H;
        std::fill(m.begin(), m.end(), -std::numeric_limits<T>::infinity());
        std::fill(l.begin(), l.end(), T(0));
        std::fill(Oc.begin() + i0 * W, Oc.begin() + i1 * W, T(0));
        for (int64_t j0 = 0; j0 < i1; j0 += kCols) {
          // Live part: positions [max(i0, j0), i1) against keys [j0, j0 + cols).
          const int64_t p0 = std::max(i0, j0), r0 = (p0 - i0) * H, nr = rows - r0;
          const ScoreRows blk{nr, p0, H, j0, std::min({kCols, S - j0, i1 - j0}), kCols};
          gemm<T>(false, false, nr, blk.cols, D, T(1), Qc.data() + p0 * W, D, KT.data() + j0 * D, kCols, T(0), P.data(),
                  kCols);
          online_softmax_rows(P.data(), blk, m.data() + r0, l.data() + r0, Oc.data() + p0 * W, D);
          gemm<T>(false, false, nr, D, blk.cols, T(1), P.data(), kCols, Vc.data() + j0 * D, D, T(1), Oc.data() + p0 * W,
                  D);
        }
        for (int64_t r = 0; r < rows; ++r) {
          const T inv = T(1) / l[size_t(r)];
          T* orow = Oc.data() + i0 * W + r * D;
          for (int64_t d = 0; d < D; ++d) orow[d] *= inv;
          const int64_t s = i0 + r / H, h = g * H + r % H;
          lse[(b * A + h) * S + s] = m[size_t(r)] + std::log(l[size_t(r)]);
        }
      }
      scatter(Oc.data(), S, W, o + (b * A + g * H) * D, q_stride);
    }
  }
}

// Flash-attention-2 backward. With Qs = Q/sqrt(D) and P = exp(Qs·Kᵀ − lse) recomputed per tile:
//   dV += Pᵀ·dO;  dP = dO·Vᵀ;  dS = P ⊙ (dP − Δ), Δ_i = Σ_d dO_id·O_id;
//   dQ += dS·K / sqrt(D);  dK += dSᵀ·Qs.
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                        T* dv, const AttentionShape& sh) {
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D;
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t H = A / G, W = H * D, q_stride = B * A * D, kv_stride = B * G * D, TP = tile_positions(H);
  const T scale = T(1) / std::sqrt(T(D));
  const size_t SD = size_t(S * D), SW = size_t(S * W);
  std::vector<T> Kc(SD), KT(tiled_size(S, D, kBwdCols)), VT(tiled_size(S, D, kBwdCols)), dKc(SD), dVc(SD), Qc(SW),
      dOc(SW), dQc(SW);
  std::vector<T> lse_c(size_t(S * H)), delta(size_t(S * H));  // per stacked row
  std::vector<T> P(size_t(TP * H * kBwdCols)), dP(size_t(TP * H * kBwdCols));

  for (int64_t b = 0; b < B; ++b) {
    for (int64_t g = 0; g < G; ++g) {
      const int64_t off = (b * A + g * H) * D;
      gather(k + (b * G + g) * D, kv_stride, S, D, T(1), Kc.data());
      gather_key_tiles(k + (b * G + g) * D, kv_stride, S, D, kBwdCols, KT.data());
      gather_key_tiles(v + (b * G + g) * D, kv_stride, S, D, kBwdCols, VT.data());
      gather(q + off, q_stride, S, W, scale, Qc.data());
      gather(dout + off, q_stride, S, W, T(1), dOc.data());
      for (int64_t s = 0; s < S; ++s)
        for (int64_t h = 0; h < H; ++h) {
          const T* orow = o + off + s * q_stride + h * D;
          const T* drow = dOc.data() + (s * H + h) * D;
          T acc = 0;
          for (int64_t d = 0; d < D; ++d) acc += drow[d] * orow[d];
          delta[size_t(s * H + h)] = acc;
          lse_c[size_t(s * H + h)] = lse[(b * A + g * H + h) * S + s];
        }
      std::fill(dKc.begin(), dKc.end(), T(0));
      std::fill(dVc.begin(), dVc.end(), T(0));
      std::fill(dQc.begin(), dQc.end(), T(0));
      // Key tiles outer: dK_j, dV_j stay hot while the query tiles that see them stream by.
      for (int64_t j0 = 0; j0 < S; j0 += kBwdCols) {
        for (int64_t i0 = j0 / TP * TP; i0 < S; i0 += TP) {
          const int64_t i1 = std::min(S, i0 + TP), p0 = std::max(i0, j0), nr = (i1 - p0) * H;
          const ScoreRows blk{nr, p0, H, j0, std::min({kBwdCols, S - j0, i1 - j0}), kBwdCols};
          const T* Qt = Qc.data() + p0 * W;
          const T* dOt = dOc.data() + p0 * W;
          gemm<T>(false, false, nr, blk.cols, D, T(1), Qt, D, KT.data() + j0 * D, kBwdCols, T(0), P.data(), kBwdCols);
          gemm<T>(false, false, nr, blk.cols, D, T(1), dOt, D, VT.data() + j0 * D, kBwdCols, T(0), dP.data(), kBwdCols);
          score_grad_rows(P.data(), dP.data(), blk, lse_c.data() + p0 * H, delta.data() + p0 * H);
          gemm<T>(true, false, blk.cols, D, nr, T(1), P.data(), kBwdCols, dOt, D, T(1), dVc.data() + j0 * D, D);
          gemm<T>(false, false, nr, D, blk.cols, scale, dP.data(), kBwdCols, Kc.data() + j0 * D, D, T(1),
                  dQc.data() + p0 * W, D);
          gemm<T>(true, false, blk.cols, D, nr, T(1), dP.data(), kBwdCols, Qt, D, T(1), dKc.data() + j0 * D, D);
        }
      }
      scatter(dQc.data(), S, W, dq + off, q_stride);
      scatter(dKc.data(), S, D, dk + (b * G + g) * D, kv_stride);
      scatter(dVc.data(), S, D, dv + (b * G + g) * D, kv_stride);
    }
  }
}

template void attention_forward<float>(const float*, const float*, const float*, float*, float*, const AttentionShape&);
template void attention_forward<double>(const double*, const double*, const double*, double*, double*,
                                        const AttentionShape&);
template void attention_backward<float>(const float*, const float*, const float*, const float*, const float*,
                                        const float*, float*, float*, float*, const AttentionShape&);
template void attention_backward<double>(const double*, const double*, const double*, const double*, const double*,
                                         const double*, double*, double*, double*, const AttentionShape&);

}  // namespace foldmoe::ops
