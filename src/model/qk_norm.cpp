#include "model/qk_norm.h"

#include <cmath>

#include "ops/rmsnorm.h"
#include "parallel/sharding.h"

namespace foldmoe {

QkNorm::QkNorm(Kind kind, const std::string& name, int64_t heads, int64_t global_heads, int64_t D, double eps,
               ParamArena& dense, std::shared_ptr<Communicator> tp)
    : kind_(kind), heads_(heads), global_heads_(global_heads), D_(D), eps_(eps), tp_(std::move(tp)) {
  const int T = tp_->size();
  if (kind_ == Kind::Head)
    w_ = dense.add(
        {.name = name, .shape = {D}, .init = InitKind::Ones, .weight_decay = false, .sequence_parallel = true});
  else
    w_ = dense.add({.name = name,
                    .shape = {heads * D},
                    .global_shape = {global_heads * D},
                    .init = InitKind::Ones,
                    .weight_decay = false,
                    .global_index = when_sharded(T, row_shard(heads * D, 1, tp_->rank()))});
}

void QkNorm::forward(float* x, int64_t N, Cache& c) const {
  const int64_t W = heads_ * D_;
  c.x.assign(x, x + N * W);
  if (kind_ == Kind::Head) {
    c.rstd.resize(size_t(N * heads_));
    ops::rmsnorm_forward(c.x.data(), w_.w(), x, c.rstd.data(), N * heads_, D_, eps_);
    return;
  }
  // "full": the sum of squares of every row spans the heads of all TP ranks. It is accumulated in
  // double so that TP's split sum and one process's whole sum round to the same float.
  const float* w = w_.w();
  std::vector<double> ss(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) ss[size_t(n)] += double(c.x[size_t(n * W + j)]) * c.x[size_t(n * W + j)];
  tp_->all_reduce(ss.data(), N);  // a no-op over one rank
  const double width = double(global_heads_ * D_);
  c.rstd.resize(size_t(N));
  for (int64_t n = 0; n < N; ++n) {
    const float rs = float(1.0 / std::sqrt(ss[size_t(n)] / width + eps_));
    c.rstd[size_t(n)] = rs;
    for (int64_t j = 0; j < W; ++j) x[n * W + j] = c.x[size_t(n * W + j)] * rs * w[j];
  }
}

void QkNorm::backward(float* d, int64_t N, Cache& c) const {
  const int64_t W = heads_ * D_;
  if (kind_ == Kind::Head) {
    c.dy.assign(d, d + N * W);  // rmsnorm_backward reads dy after writing dx: no aliasing
    ops::rmsnorm_backward(c.x.data(), w_.w(), c.rstd.data(), c.dy.data(), d, w_.g(), N * heads_, D_);
    return;
  }
  // dx_j = r·w_j·dy_j − x_j·r³·c/W with c = Σ_k dy_k·w_k·x_k over all TP ranks' heads.
  const float *w = w_.w(), *x = c.x.data();
  float* dw = w_.g();
  std::vector<double> dot(static_cast<size_t>(N), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) dot[size_t(n)] += double(d[n * W + j]) * w[j] * x[n * W + j];
  tp_->all_reduce(dot.data(), N);  // a no-op over one rank
  const double width = double(global_heads_ * D_);
  for (int64_t n = 0; n < N; ++n) {
    const float rs = c.rstd[size_t(n)];
    const float k = float(double(rs) * rs * rs * dot[size_t(n)] / width);
    for (int64_t j = 0; j < W; ++j) {
      const float g = d[n * W + j], xj = x[n * W + j];
      dw[j] += g * xj * rs;
      d[n * W + j] = rs * w[j] * g - xj * k;
    }
  }
}

}  // namespace foldmoe
