#include "train/flops.h"

#include <vector>

#include "core/timer.h"
#include "ops/linear.h"

namespace foldmoe {

double model_flops_per_token(const Config& c) {
  const double L = c.model.layers, h = c.model.hidden, s = c.train.seq_len;
  const double A = c.model.heads, G = c.model.kv_heads, d = c.head_dim();
  double L_moe = 0;
  for (int i = 0; i < c.model.layers; ++i) L_moe += c.is_moe_layer(i);
  const double L_dense = L - L_moe;
  const double m = 1.5;  // SwiGLU
  const double F = c.model.ffn, F_moe = c.moe_ffn(), k = c.moe.topk, F_sh = c.moe.shared_expert_ffn_hidden_size;
  const double V = c.model.vocab;
  const double mlp = 12.0 * L * h * (F * m * L_dense / L + F_moe * k * m * L_moe / L + F_sh * m * L_moe / L);
  const double attn = 12.0 * L * h * h * (1.0 + G / A + s / (2.0 * h)) * (d * A / h);
  const double logits = 6.0 * h * V;
  return mlp + attn + logits;
}

double measure_peak_flops(ops::MatmulPrecision precision) {
  const ops::MatmulPrecisionScope scope(precision);
  const int64_t n = 1024;
  std::vector<float> a(size_t(n * n), 0.5f), b(size_t(n * n), 0.25f), c(size_t(n * n), 0.0f);
  ops::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);  // warm-up
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    Stopwatch w;
    ops::gemm<float>(false, false, n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double t = w.seconds();
    best = std::max(best, 2.0 * double(n) * double(n) * double(n) / t);
  }
  return best;
}

}  // namespace foldmoe
