#include "model/dense_mlp.h"

#include "ops/linear.h"
#include "ops/swiglu.h"

namespace foldmoe {

DenseMlp::DenseMlp(const std::string& prefix, int64_t H, int64_t F, double std_in, double std_out,
                   ParamArena& arena)
    : H_(H), F_(F) {
  fc1_ = arena.add({.name = prefix + "fc1", .shape = {2 * F, H}, .init_std = std_in});
  fc2_ = arena.add({.name = prefix + "fc2", .shape = {H, F}, .init_std = std_out});
}

void DenseMlp::forward(const float* x, float* y, int64_t N, Cache& c) const {
  c.x_NH.assign(x, x + N * H_);
  c.ab_N2F.resize(size_t(N * 2 * F_));
  c.h_NF.resize(size_t(N * F_));
  ops::linear_forward(x, fc1_.w(), c.ab_N2F.data(), N, H_, 2 * F_);
  ops::swiglu_forward(c.ab_N2F.data(), c.h_NF.data(), N, F_);
  ops::linear_forward(c.h_NF.data(), fc2_.w(), y, N, F_, H_);
}

void DenseMlp::backward(const float* dy, float* dx, int64_t N, Cache& c) const {
  std::vector<float>&dh = c.dh_NF, &dab = c.dab_N2F;
  dh.resize(size_t(N * F_));
  dab.resize(size_t(N * 2 * F_));
  ops::linear_backward(c.h_NF.data(), fc2_.w(), dy, dh.data(), fc2_.g(), N, F_, H_);
  ops::swiglu_backward(c.ab_N2F.data(), dh.data(), dab.data(), N, F_);
  ops::linear_backward(c.x_NH.data(), fc1_.w(), dab.data(), dx, fc1_.g(), N, H_, 2 * F_);
}

}  // namespace foldmoe
