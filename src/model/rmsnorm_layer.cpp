#include "model/rmsnorm_layer.h"

#include "ops/rmsnorm.h"

namespace foldmoe {

RmsNormLayer::RmsNormLayer(const std::string& name, int64_t H, double eps, ParamArena& arena, bool sp)
    : H_(H), eps_(eps) {
  w_ = arena.add({.name = name, .shape = {H}, .init = InitKind::Ones, .weight_decay = false, .sequence_parallel = sp});
}

void RmsNormLayer::forward(const float* x, float* y, int64_t N, Cache& c) const {
  c.x_NH.assign(x, x + N * H_);
  c.rstd_N.resize(size_t(N));
  ops::rmsnorm_forward(x, w_.w(), y, c.rstd_N.data(), N, H_, eps_);
}

void RmsNormLayer::backward(const float* dy, float* dx, int64_t N, const Cache& c) const {
  ops::rmsnorm_backward(c.x_NH.data(), w_.w(), c.rstd_N.data(), dy, dx, w_.g(), N, H_);
}

}  // namespace foldmoe
