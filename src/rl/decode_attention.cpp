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
  scores.resize(size_t(per * T));
  float* s = scores.data();
  for (int64_t g = 0; g < G; ++g) {
    const float* qg = q + g * per * D;
    float* og = o + g * per * D;
    // Scores [per, T] = scale · Q_g · K_gᵀ.
    ops::gemm<float>(false, true, per, T, D, scale, qg, D, K + g * head_stride, D, 0.0f, s, T);
    for (int64_t j = 0; j < per; ++j) {
      float* sj = s + j * T;
      const float mx = *std::max_element(sj, sj + T);
      const float inv = 1.0f / exp_shift_sum(sj, T, mx);
      for (int64_t t = 0; t < T; ++t) sj[t] *= inv;
    }
    // o_g [per, D] = P · V_g.
    ops::gemm<float>(false, false, per, D, T, 1.0f, s, T, V + g * head_stride, D, 0.0f, og, D);
  }
}

}  // namespace foldmoe::rl
