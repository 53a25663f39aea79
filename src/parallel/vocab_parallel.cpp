#include "parallel/vocab_parallel.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/check.h"
#include "ops/cross_entropy.h"

namespace foldmoe {

int64_t VocabShard::valid() const { return std::clamp<int64_t>(vocab - first, 0, rows); }

int64_t VocabShard::padded_vocab(int64_t vocab, int tp, int multiple) {
  const int64_t m = int64_t(multiple) * tp;
  return (vocab + m - 1) / m * m;
}

VocabShard VocabShard::of(int64_t vocab, int tp, int rank, int multiple) {
  VocabShard s;
  s.vocab = vocab;
  s.rows = padded_vocab(vocab, tp, multiple) / tp;
  s.first = int64_t(rank) * s.rows;
  return s;
}

VocabShard VocabShard::split(int64_t vocab, int tp, int rank) {
  return of(vocab, tp, rank, tp > 1 ? 128 : 1);
}

void vp_embedding_forward(const float* table, const int32_t* ids, float* out, int64_t n, int64_t H,
                          const VocabShard& s) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = int64_t(ids[i]) - s.first;
    float* o = out + i * H;
    if (r >= 0 && r < s.valid())
      std::memcpy(o, table + r * H, size_t(H) * sizeof(float));
    else
      std::fill(o, o + H, 0.0f);
  }
}

void vp_embedding_backward(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t H,
                           const VocabShard& s) {
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = int64_t(ids[i]) - s.first;
    if (r < 0 || r >= s.valid()) continue;
    float* d = dtable + r * H;
    const float* g = dout + i * H;
    for (int64_t h = 0; h < H; ++h) d[h] += g[h];
  }
}

void vp_cross_entropy_forward(const float* logits, const int32_t* target, const uint8_t* mask, float* loss, float* lse,
                              int64_t n, const VocabShard& s, Communicator& tp) {
  const int64_t valid = s.valid();
  std::vector<float> mx(static_cast<size_t>(n)), sums(static_cast<size_t>(2 * n), 0.0f);  // sums: [Σ exp(l − m), l_y − m]
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * s.rows;
    float m = -std::numeric_limits<float>::infinity();
    for (int64_t c = 0; c < valid; ++c) m = std::max(m, row[c]);
    mx[size_t(i)] = m;
  }
  tp.all_reduce(mx.data(), n, ReduceOp::Max);
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * s.rows;
    const float m = mx[size_t(i)];
    float z = 0;
    for (int64_t c = 0; c < valid; ++c) z += std::exp(row[c] - m);
    sums[size_t(2 * i)] = z;
    const int64_t ty = int64_t(target[i]) - s.first;
    if (ty >= 0 && ty < valid) sums[size_t(2 * i + 1)] = row[ty] - m;
  }
  tp.all_reduce(sums.data(), 2 * n);
  for (int64_t i = 0; i < n; ++i) {
    FOLDMOE_CHECK(target[i] >= 0 && target[i] < s.vocab, "target {} outside the vocabulary {}", target[i], s.vocab);
    const float log_z = std::log(sums[size_t(2 * i)]);
    lse[i] = log_z + mx[size_t(i)];
    loss[i] = (mask && !mask[i]) ? 0.0f : log_z - sums[size_t(2 * i + 1)];
  }
}

void vp_cross_entropy_backward(const float* logits, const int32_t* target, const uint8_t* mask, const float* lse,
                               const float* dloss, float* dlogits, int64_t n, const VocabShard& s) {
  const int64_t valid = s.valid();
  for (int64_t i = 0; i < n; ++i) {
    const float* row = logits + i * s.rows;
    float* d = dlogits + i * s.rows;
    const float g = (mask && !mask[i]) ? 0.0f : dloss[i];
    if (g == 0.0f) {
      std::fill(d, d + s.rows, 0.0f);
      continue;
    }
    const float l = lse[i];
    for (int64_t c = 0; c < valid; ++c) d[c] = std::exp(row[c] - l) * g;
    std::fill(d + valid, d + s.rows, 0.0f);
    const int64_t ty = int64_t(target[i]) - s.first;
    if (ty >= 0 && ty < valid) d[ty] -= g;
  }
}

void vp_cross_entropy_forward_backward(const float* logits, const int32_t* target, const uint8_t* mask,
                                       const float* dloss, float* loss, float* lse, float* dlogits, int64_t n,
                                       const VocabShard& s, Communicator& tp) {
  if (tp.size() == 1 && s.rows == s.vocab)
    return ops::cross_entropy_forward_backward(logits, target, mask, dloss, loss, lse, dlogits, n, s.vocab);
  vp_cross_entropy_forward(logits, target, mask, loss, lse, n, s, tp);
  vp_cross_entropy_backward(logits, target, mask, lse, dloss, dlogits, n, s);
}

}  // namespace foldmoe
