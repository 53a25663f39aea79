// AdamW with decoupled weight decay and bias correction (Loshchilov & Hutter; torch.optim.AdamW):
//   p ← p − lr·wd·p;  m ← β1 m + (1−β1) g;  v ← β2 v + (1−β2) g²;
//   p ← p − lr · (m / (1−β1^t)) / (sqrt(v / (1−β2^t)) + eps)        t = step, starting at 1
#pragma once

#include <cstdint>

namespace foldmoe::ops {

struct AdamWHyper {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // 1-based
};

void adamw_step(float* param, const float* grad, float* m, float* v, int64_t n, const AdamWHyper& h);

// The same update on g = grad·grad_scale (rounded to float exactly as a separate in-place scale
// would be: gradient clipping), after which grad is zeroed for the next accumulation. One pass
// over the arena instead of three (clip, update, zero_grad); results are bitwise the same.
void adamw_step_consume(float* param, float* grad, float* m, float* v, int64_t n, const AdamWHyper& h,
                        float grad_scale);

// Σ g² in double (for the global grad norm).
double sum_squares(const float* g, int64_t n);
void scale_inplace(float* x, int64_t n, float s);

}  // namespace foldmoe::ops
