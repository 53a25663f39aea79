#include "model/attention_block.h"

#include <cmath>

#include <fmt/format.h>

#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/rope.h"

namespace foldmoe {

AttentionBlock::AttentionBlock(const Config& cfg, int layer, ParamArena& dense)
    : H_(cfg.model.hidden), A_(cfg.model.heads), G_(cfg.model.kv_heads), D_(cfg.head_dim()),
      theta_(cfg.model.rope_theta) {
  const std::string p = fmt::format("layers.{}.attn.", layer);
  const double std_in = cfg.model.init_std;
  const double std_out = cfg.model.init_std / std::sqrt(2.0 * cfg.model.layers);
  wq_ = dense.add({.name = p + "wq", .shape = {A_ * D_, H_}, .init_std = std_in});
  wk_ = dense.add({.name = p + "wk", .shape = {G_ * D_, H_}, .init_std = std_in});
  wv_ = dense.add({.name = p + "wv", .shape = {G_ * D_, H_}, .init_std = std_in});
  wo_ = dense.add({.name = p + "wo", .shape = {H_, A_ * D_}, .init_std = std_out});
}

void AttentionBlock::forward(const float* x, float* out, int64_t S, int64_t B, const int32_t* pos, Cache& c) const {
  const int64_t N = S * B;
  c.x_NH.assign(x, x + N * H_);
  c.q_NAD.resize(size_t(N * A_ * D_));
  c.k_NGD.resize(size_t(N * G_ * D_));
  c.v_NGD.resize(size_t(N * G_ * D_));
  c.o_NAD.resize(size_t(N * A_ * D_));
  c.lse_BAS.resize(size_t(B * A_ * S));
  ops::linear_forward(x, wq_.w(), c.q_NAD.data(), N, H_, A_ * D_);
  ops::linear_forward(x, wk_.w(), c.k_NGD.data(), N, H_, G_ * D_);
  ops::linear_forward(x, wv_.w(), c.v_NGD.data(), N, H_, G_ * D_);
  ops::rope_forward(c.q_NAD.data(), pos, N, A_, D_, theta_);
  ops::rope_forward(c.k_NGD.data(), pos, N, G_, D_, theta_);
  const ops::AttentionShape shape{S, B, A_, G_, D_};
  ops::attention_forward(c.q_NAD.data(), c.k_NGD.data(), c.v_NGD.data(), c.o_NAD.data(), c.lse_BAS.data(), shape);
  ops::linear_forward(c.o_NAD.data(), wo_.w(), out, N, A_ * D_, H_);
}

void AttentionBlock::backward(const float* dout, float* dx, int64_t S, int64_t B, const int32_t* pos,
                              Cache& c) const {
  const int64_t N = S * B;
  std::vector<float>&do_NAD = c.do_NAD, &dq = c.dq_NAD, &dk = c.dk_NGD, &dv = c.dv_NGD;
  do_NAD.resize(size_t(N * A_ * D_));
  dq.resize(size_t(N * A_ * D_));
  dk.resize(size_t(N * G_ * D_));
  dv.resize(size_t(N * G_ * D_));
  ops::linear_backward(c.o_NAD.data(), wo_.w(), dout, do_NAD.data(), wo_.g(), N, A_ * D_, H_);
  const ops::AttentionShape shape{S, B, A_, G_, D_};
  ops::attention_backward(c.q_NAD.data(), c.k_NGD.data(), c.v_NGD.data(), c.o_NAD.data(), c.lse_BAS.data(),
                          do_NAD.data(), dq.data(), dk.data(), dv.data(), shape);
  ops::rope_backward(dq.data(), pos, N, A_, D_, theta_);
  ops::rope_backward(dk.data(), pos, N, G_, D_, theta_);
  const float* x = c.x_NH.data();
  ops::linear_backward(x, wq_.w(), dq.data(), dx, wq_.g(), N, H_, A_ * D_);
  ops::linear_backward(x, wk_.w(), dk.data(), dx, wk_.g(), N, H_, G_ * D_, /*accumulate_dx=*/true);
  ops::linear_backward(x, wv_.w(), dv.data(), dx, wv_.g(), N, H_, G_ * D_, /*accumulate_dx=*/true);
}

}  // namespace foldmoe
