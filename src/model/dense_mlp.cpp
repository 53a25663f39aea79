#include "model/dense_mlp.h"

#include "ops/linear.h"
#include "ops/swiglu.h"
#include "parallel/mappings.h"
#include "parallel/sharding.h"

namespace foldmoe {

DenseMlp::DenseMlp(const std::string& prefix, int64_t H, int64_t F, double std_in, double std_out,
                   ParamArena& arena, std::shared_ptr<Communicator> tp)
    : tp_(std::move(tp)), H_(H), F_(F / tp_->size()) {
  const int T = tp_->size(), t = tp_->rank();
  fc1_ = arena.add({.name = prefix + "fc1", .shape = {2 * F_, H}, .global_shape = {2 * F, H}, .init_std = std_in,
                    .global_index = when_sharded(T, paired_row_shard(F_, H, t, T))});
  fc2_ = arena.add({.name = prefix + "fc2", .shape = {H, F_}, .global_shape = {H, F}, .init_std = std_out,
                    .global_index = when_sharded(T, col_shard(H, F_, t, T))});
}

void DenseMlp::forward(const float* x_loc, float* y_loc, int64_t N_loc, Cache& c) const {
  const int64_t N = N_loc * tp_->size();
  const float* x = sp_gather(*tp_, x_loc, N_loc, H_, c.x_full);
  if (x == x_loc) c.x_full.assign(x_loc, x_loc + N * H_);  // keep the input for the backward
  c.ab_N2F.resize(size_t(N * 2 * F_));
  c.h_NF.resize(size_t(N * F_));
  ops::linear_forward(x, fc1_.w(), c.ab_N2F.data(), N, H_, 2 * F_);
  ops::swiglu_forward(c.ab_N2F.data(), c.h_NF.data(), N, F_);
  float* y = sp_partial_buffer(*tp_, y_loc, N_loc, H_, c.y_full);
  ops::linear_forward(c.h_NF.data(), fc2_.w(), y, N, F_, H_);  // partial over TP
  sp_reduce_scatter(*tp_, y, N_loc, H_, y_loc);
}

void DenseMlp::backward(const float* dy_loc, float* dx_loc, int64_t N_loc, Cache& c) const {
  const int64_t N = N_loc * tp_->size();
  std::vector<float>&dh = c.dh_NF, &dab = c.dab_N2F;
  dh.resize(size_t(N * F_));
  dab.resize(size_t(N * 2 * F_));
  const float* dy = sp_gather(*tp_, dy_loc, N_loc, H_, c.dy_full);
  ops::linear_backward(c.h_NF.data(), fc2_.w(), dy, dh.data(), fc2_.g(), N, F_, H_);
  ops::swiglu_backward(c.ab_N2F.data(), dh.data(), dab.data(), N, F_);
  float* dx = sp_partial_buffer(*tp_, dx_loc, N_loc, H_, c.dx_full);
  ops::linear_backward(c.x_full.data(), fc1_.w(), dab.data(), dx, fc1_.g(), N, H_, 2 * F_);  // partial over TP
  sp_reduce_scatter(*tp_, dx, N_loc, H_, dx_loc);
}

}  // namespace foldmoe
