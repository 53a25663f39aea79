#include "model/transformer_layer.h"

#include <cmath>

#include <fmt/format.h>

#include "core/bytes.h"

namespace foldmoe {

TransformerLayer::TransformerLayer(const Config& cfg, int layer, ParamArena& dense, ParamArena& expert,
                                   const ProcessGroups& groups)
    : H_(cfg.model.hidden),
      tp_size_(groups.tp->size()),
      attn_norm_(fmt::format("layers.{}.attn_norm.weight", layer), H_, cfg.model.norm_eps, dense, true),
      mlp_norm_(fmt::format("layers.{}.mlp_norm.weight", layer), H_, cfg.model.norm_eps, dense, true),
      attn_(cfg, layer, dense, groups.tp, groups.cp) {
  if (cfg.is_moe_layer(layer)) {
    moe_ = std::make_unique<MoELayer>(cfg, layer, dense, expert, groups);
  } else {
    mlp_ = std::make_unique<DenseMlp>(fmt::format("layers.{}.mlp.", layer), H_, cfg.model.ffn, cfg.model.init_std,
                                      cfg.model.init_std / std::sqrt(2.0 * cfg.model.layers), dense, groups.tp);
  }
}

std::unique_ptr<TransformerLayer::Cache> TransformerLayer::make_cache() const {
  auto c = std::make_unique<Cache>();
  if (moe_) c->moe = moe_->make_cache();
  return c;
}

void TransformerLayer::forward(std::vector<float>& x, int64_t S, int64_t B, const int32_t* pos,
                               const MoEStepContext& ctx, Cache& c, MoEStats* stats) {
  const int64_t N = S * B / tp_size_;  // rows of this rank's SP piece
  std::vector<float>&normed = c.work_a_NH, &branch = c.work_b_NH;
  normed.resize(size_t(N * H_));
  branch.resize(size_t(N * H_));
  attn_norm_.forward(x.data(), normed.data(), N, c.attn_norm);
  attn_.forward(normed.data(), branch.data(), S, B, pos, c.attn);
  for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];
  mlp_norm_.forward(x.data(), normed.data(), N, c.mlp_norm);
  if (moe_)
    moe_->forward(normed.data(), branch.data(), N, ctx, *c.moe, stats);
  else
    mlp_->forward(normed.data(), branch.data(), N, c.mlp);
  for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];
}

void TransformerLayer::release_activations(Cache& c, bool moe_only) const {
  if (moe_) moe_->release_activations(*c.moe, /*keep_input=*/moe_only);
  if (moe_only) return;
  c.attn_norm = {};
  c.mlp_norm = {};
  c.attn = {};
  c.mlp = {};
  c.work_a_NH = {};
  c.work_b_NH = {};
}

size_t TransformerLayer::cache_bytes(const Cache& c) {
  const AttentionBlock::Cache& a = c.attn;
  const RingAttentionWorkspace& r = a.ring;
  const DenseMlp::Cache& m = c.mlp;
  return vector_bytes(c.attn_norm.x_NH, c.attn_norm.rstd_N, c.mlp_norm.x_NH, c.mlp_norm.rstd_N, c.work_a_NH,
                      c.work_b_NH) +
         vector_bytes(a.x_full, a.q_NAD, a.k_NGD, a.v_NGD, a.o_NAD, a.lse_BAS, a.out_full, a.dout_full, a.dx_full,
                      a.do_NAD, a.dq_NAD, a.dk_NGD, a.dv_NGD) +
         vector_bytes(r.kv, r.kv_next, r.o_i, r.lse_i, r.delta, r.dq_tmp, r.dk_tmp, r.dv_tmp) +
         vector_bytes(m.x_full, m.ab_N2F, m.h_NF, m.y_full, m.dy_full, m.dx_full, m.dh_NF, m.dab_N2F) +
         (c.moe ? MoELayer::cache_bytes(*c.moe) : 0);
}

void TransformerLayer::backward(std::vector<float>& dx, int64_t S, int64_t B, const int32_t* pos, Cache& c) {
  const int64_t N = S * B / tp_size_;
  std::vector<float>&dnormed = c.work_a_NH, &dbranch = c.work_b_NH;
  dnormed.resize(size_t(N * H_));
  dbranch.resize(size_t(N * H_));
  // MLP branch: dx already holds d(output) = d(residual h) contribution.
  if (moe_)
    moe_->backward(*c.moe, dx.data(), dnormed.data());
  else
    mlp_->backward(dx.data(), dnormed.data(), N, c.mlp);
  mlp_norm_.backward(dnormed.data(), dbranch.data(), N, c.mlp_norm);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dbranch[i];
  attn_.backward(dx.data(), dnormed.data(), S, B, pos, c.attn);
  attn_norm_.backward(dnormed.data(), dbranch.data(), N, c.attn_norm);
  for (size_t i = 0; i < dx.size(); ++i) dx[i] += dbranch[i];
}

}  // namespace foldmoe
