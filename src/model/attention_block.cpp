#include "model/attention_block.h"

#include <cmath>

#include <fmt/format.h>

#include "ops/attention.h"
#include "ops/linear.h"
#include "ops/rope.h"
#include "parallel/mappings.h"
#include "parallel/sharding.h"

namespace foldmoe {

AttentionBlock::AttentionBlock(const Config& cfg, int layer, ParamArena& dense, std::shared_ptr<Communicator> tp,
                               std::shared_ptr<Communicator> cp)
    : tp_(std::move(tp)),
      cp_(cp ? std::move(cp) : make_single_rank_communicator("cp")),
      H_(cfg.model.hidden),
      D_(cfg.head_dim()),
      rope_(ops::rope_table(cfg.model, cfg.head_dim())),
      cp_comm_(cfg.parallel.cp_comm_type == "all_gather" ? CpCommType::AllGather : CpCommType::P2P) {
  const int T = tp_->size(), t = tp_->rank();
  const int64_t A = cfg.model.heads, G = cfg.model.kv_heads;
  A_ = A / T;
  G_ = G / T;
  const std::string p = fmt::format("layers.{}.attn.", layer);
  const double std_in = cfg.model.init_std;
  const double std_out = cfg.model.init_std / std::sqrt(2.0 * cfg.model.layers);
  auto column = [&](const char* name, int64_t heads, int64_t global_heads, double sd) {
    return dense.add({.name = p + name, .shape = {heads * D_, H_}, .global_shape = {global_heads * D_, H_},
                      .init_std = sd, .global_index = when_sharded(T, row_shard(heads * D_, H_, t))});
  };
  wq_ = column("wq", A_, A, std_in);
  wk_ = column("wk", G_, G, std_in);
  wv_ = column("wv", G_, G, std_in);
  wo_ = dense.add({.name = p + "wo", .shape = {H_, A_ * D_}, .global_shape = {H_, A * D_}, .init_std = std_out,
                   .global_index = when_sharded(T, col_shard(H_, A_ * D_, t, T))});
  if (cfg.model.attention_bias) {
    auto bias = [&](const char* name, int64_t heads, int64_t global_heads) {
      return dense.add({.name = p + name,
                        .shape = {heads * D_},
                        .global_shape = {global_heads * D_},
                        .init = InitKind::Zeros,
                        .weight_decay = false,
                        .global_index = when_sharded(T, row_shard(heads * D_, 1, t))});
    };
    bq_ = bias("q_bias", A_, A);
    bk_ = bias("k_bias", G_, G);
    bv_ = bias("v_bias", G_, G);
  }
  if (cfg.model.qk_norm != "none") {
    const auto kind = cfg.model.qk_norm == "head" ? QkNorm::Kind::Head : QkNorm::Kind::Full;
    const double eps = cfg.model.norm_eps;
    q_norm_ = std::make_unique<QkNorm>(kind, p + "q_norm", A_, A, D_, eps, dense, tp_);
    k_norm_ = std::make_unique<QkNorm>(kind, p + "k_norm", G_, G, D_, eps, dense, tp_);
  }
}

namespace {
// y[n, :] += b for every row.
void add_bias(float* y, const float* b, int64_t N, int64_t W) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) y[n * W + j] += b[j];
}
// db += Σ_n dy[n, :].
void bias_grad(const float* dy, float* db, int64_t N, int64_t W) {
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < W; ++j) db[j] += dy[n * W + j];
}
}  // namespace

void AttentionBlock::forward(const float* x_loc, float* out_loc, int64_t S, int64_t B, const int32_t* pos,
                             Cache& c) const {
  const int64_t N = S * B, N_loc = N / tp_->size();
  const float* x = sp_gather(*tp_, x_loc, N_loc, H_, c.x_full);
  if (x == x_loc) c.x_full.assign(x_loc, x_loc + N * H_);  // keep the input for the backward
  c.q_NAD.resize(size_t(N * A_ * D_));
  c.k_NGD.resize(size_t(N * G_ * D_));
  c.v_NGD.resize(size_t(N * G_ * D_));
  c.o_NAD.resize(size_t(N * A_ * D_));
  c.lse_BAS.resize(size_t(B * A_ * S));
  ops::linear_forward(x, wq_.w(), c.q_NAD.data(), N, H_, A_ * D_);
  ops::linear_forward(x, wk_.w(), c.k_NGD.data(), N, H_, G_ * D_);
  ops::linear_forward(x, wv_.w(), c.v_NGD.data(), N, H_, G_ * D_);
  if (bq_.valid()) {
    add_bias(c.q_NAD.data(), bq_.w(), N, A_ * D_);
    add_bias(c.k_NGD.data(), bk_.w(), N, G_ * D_);
    add_bias(c.v_NGD.data(), bv_.w(), N, G_ * D_);
  }
  if (q_norm_) {
    q_norm_->forward(c.q_NAD.data(), N, c.q_norm);
    k_norm_->forward(c.k_NGD.data(), N, c.k_norm);
  }
  ops::rope_forward(c.q_NAD.data(), pos, N, A_, D_, rope_);
  ops::rope_forward(c.k_NGD.data(), pos, N, G_, D_, rope_);
  const ops::AttentionShape shape{S, B, A_, G_, D_};
  // With one CP rank the ring is ops::attention_forward itself.
  ring_attention_forward(*cp_, c.q_NAD.data(), c.k_NGD.data(), c.v_NGD.data(), c.o_NAD.data(), c.lse_BAS.data(), shape,
                         c.ring, cp_comm_);
  float* out = sp_partial_buffer(*tp_, out_loc, N_loc, H_, c.out_full);
  ops::linear_forward(c.o_NAD.data(), wo_.w(), out, N, A_ * D_, H_);  // partial over TP
  sp_reduce_scatter(*tp_, out, N_loc, H_, out_loc);
}

void AttentionBlock::backward(const float* dout_loc, float* dx_loc, int64_t S, int64_t B, const int32_t* pos,
                              Cache& c) const {
  const int64_t N = S * B, N_loc = N / tp_->size();
  std::vector<float>&do_NAD = c.do_NAD, &dq = c.dq_NAD, &dk = c.dk_NGD, &dv = c.dv_NGD;
  do_NAD.resize(size_t(N * A_ * D_));
  dq.resize(size_t(N * A_ * D_));
  dk.resize(size_t(N * G_ * D_));
  dv.resize(size_t(N * G_ * D_));
  const float* dout = sp_gather(*tp_, dout_loc, N_loc, H_, c.dout_full);
  ops::linear_backward(c.o_NAD.data(), wo_.w(), dout, do_NAD.data(), wo_.g(), N, A_ * D_, H_);
  const ops::AttentionShape shape{S, B, A_, G_, D_};
  ring_attention_backward(*cp_, c.q_NAD.data(), c.k_NGD.data(), c.v_NGD.data(), c.o_NAD.data(), c.lse_BAS.data(),
                          do_NAD.data(), dq.data(), dk.data(), dv.data(), shape, c.ring, cp_comm_);
  ops::rope_backward(dq.data(), pos, N, A_, D_, rope_);
  ops::rope_backward(dk.data(), pos, N, G_, D_, rope_);
  if (q_norm_) {
    q_norm_->backward(dq.data(), N, c.q_norm);
    k_norm_->backward(dk.data(), N, c.k_norm);
  }
  if (bq_.valid()) {
    bias_grad(dq.data(), bq_.g(), N, A_ * D_);
    bias_grad(dk.data(), bk_.g(), N, G_ * D_);
    bias_grad(dv.data(), bv_.g(), N, G_ * D_);
  }
  const float* x = c.x_full.data();
  float* dx = sp_partial_buffer(*tp_, dx_loc, N_loc, H_, c.dx_full);
  ops::linear_backward(x, wq_.w(), dq.data(), dx, wq_.g(), N, H_, A_ * D_);
  ops::linear_backward(x, wk_.w(), dk.data(), dx, wk_.g(), N, H_, G_ * D_, /*accumulate_dx=*/true);
  ops::linear_backward(x, wv_.w(), dv.data(), dx, wv_.g(), N, H_, G_ * D_, /*accumulate_dx=*/true);
  sp_reduce_scatter(*tp_, dx, N_loc, H_, dx_loc);  // partial over TP
}

}  // namespace foldmoe
