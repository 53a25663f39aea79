#include "ops/adamw.h"

#include <cmath>

namespace foldmoe::ops {

// Mirrors torch.optim.AdamW's single-tensor path operation by operation (same rounding points):
//   p *= 1 − lr·wd;  m = lerp(m, g, 1−β1);  v = β2·v + (1−β2)·g²;
//   p −= (lr / (1−β1^t)) · m / (sqrt(v) / sqrt(1−β2^t) + eps).
// The scalar factors are formed in double like torch's Python-side floats.
namespace {

template <bool kConsume>
void adamw_kernel(float* param, const float* grad, float* grad_zero, float* m, float* v, int64_t n,
                  const AdamWHyper& h, float grad_scale) {
  const double t = double(h.step);
  const float decay = float(1.0 - h.lr * h.weight_decay);
  const float w1 = float(1.0 - h.beta1);
  const float b2 = float(h.beta2), w2 = float(1.0 - h.beta2);
  const float step_size = float(h.lr / (1.0 - std::pow(h.beta1, t)));
  const float bc2_sqrt = float(std::sqrt(1.0 - std::pow(h.beta2, t)));
  const float eps = float(h.eps);
  for (int64_t i = 0; i < n; ++i) {
    float g = grad[i];
    if constexpr (kConsume) {
      g *= grad_scale;
      grad_zero[i] = 0.0f;
    }
    const float mi = m[i] + w1 * (g - m[i]);
    const float vi = b2 * v[i] + w2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] = param[i] * decay - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
  }
}

}  // namespace

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h) {
  adamw_kernel<false>(param, grad, nullptr, m, v, n, h, 1.0f);
}

void adamw_step_consume(float* param, float* grad, float* m, float* v, int64_t n, const AdamWHyper& h,
                        float grad_scale) {
  adamw_kernel<true>(param, grad, grad, m, v, n, h, grad_scale);
}

// Four independent double accumulators: the compiler may not reorder a single FP sum, and the
// split both vectorises and lowers the rounding error.
double sum_squares(const float* g, int64_t n) {
  double acc[4] = {0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 4 <= n; i += 4)
    for (int l = 0; l < 4; ++l) acc[l] += double(g[i + l]) * double(g[i + l]);
  for (; i < n; ++i) acc[0] += double(g[i]) * double(g[i]);
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

void scale_inplace(float* x, int64_t n, float s) {
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

}  // namespace foldmoe::ops
