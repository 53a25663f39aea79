#include "rl/decode_attention.h"

#include <algorithm>
#include <cmath>

#include "ops/fast_exp.h"
#include "ops/linear.h"

namespace foldmoe::rl {

namespace {

// x[i] = exp(x[i] − m) in place; returns Σ x[i].
float exp_shift_sum(float* x, int64_t n, float m) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += (x[i + l] = ops::fast_exp(x[i + l] - m));
  for (; i < n; ++i) acc[0] += (x[i] = ops::fast_exp(x[i] - m));
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

void attend_cached(const float* q, const float* K, const float* V, int64_t T, int64_t A, int64_t G, int64_t D,
                   int64_t head_stride, float scale, float* o, std::vector<float>& scores) {
  const int64_t per = A / G;
  scores.resize(size_t(per * T + per * D + per));
  float* s = scores.data();
  float* qs = s + per * T;      // the scaled queries of one KV head
  float* inv_row = qs + per * D;  // 1 / Σ exp per query row
  for (int64_t g = 0; g < G; ++g) {
    const float* qg = q + g * per * D;
    float* og = o + g * per * D;
    // The query is scaled before the product and the probabilities enter P·V unnormalised (the
    // sum divides the result), as in the training kernel (ops/attention.cpp): the same operands
    // then reach the products, which a bf16 run rounds (docs/precision.md).
    for (int64_t i = 0; i < per * D; ++i) qs[i] = qg[i] * scale;
    // Scores [per, T] = Q_g · K_gᵀ.
    ops::gemm<float>(false, true, per, T, D, 1.0f, qs, D, K + g * head_stride, D, 0.0f, s, T);
    for (int64_t j = 0; j < per; ++j) {
      float* sj = s + j * T;
      const float mx = *std::max_element(sj, sj + T);
      inv_row[j] = 1.0f / exp_shift_sum(sj, T, mx);
    }
    // o_g [per, D] = P · V_g, then each row divided by its sum.
    ops::gemm<float>(false, false, per, D, T, 1.0f, s, T, V + g * head_stride, D, 0.0f, og, D);
    for (int64_t j = 0; j < per; ++j)
      for (int64_t d = 0; d < D; ++d) og[j * D + d] *= inv_row[j];
  }
}

}  // namespace foldmoe::rl
