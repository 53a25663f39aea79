#include "model/model.h"

#include <cmath>
#include <numeric>

#include "core/check.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "parallel/mappings.h"
#include "parallel/sharding.h"

namespace foldmoe {

Model::Model(const Config& cfg, const ProcessGroups& groups)
    : cfg_(cfg), groups_(groups), H_(cfg.model.hidden), V_(cfg.model.vocab) {
  FOLDMOE_CHECK(V_ > 0, "vocabulary size must be resolved before building the model");
  tp_size_ = groups.tp->size();
  tp_rank_ = groups.tp->rank();
  // Vocab-parallel rows (spec 03 §3.1): padded to a multiple of 128·TP when TP > 1. One rank keeps
  // the exact vocabulary (padding is invisible to the math, so this changes nothing but work).
  vocab_ = VocabShard::of(V_, tp_size_, tp_rank_, tp_size_ > 1 ? 128 : 1);
  const double std_in = cfg.model.init_std;
  auto vocab_param = [&](const char* name) {
    return dense_.add({.name = name, .shape = {vocab_.rows, H_}, .global_shape = {V_, H_}, .init_std = std_in,
                       .global_index = when_sharded(tp_size_, vocab_shard(vocab_.rows, H_, tp_rank_, V_))});
  };
  embedding_ = vocab_param("embedding.weight");
  for (int i = 0; i < cfg.model.layers; ++i)
    layers_.push_back(std::make_unique<TransformerLayer>(cfg, i, dense_, expert_, groups_));
  final_norm_ = std::make_unique<RmsNormLayer>("final_norm.weight", H_, cfg.model.norm_eps, dense_, true);
  head_ = vocab_param("lm_head.weight");
  // The distributed optimizer shards whole arenas over dp_cp / edp (spec 03 §9.1).
  const bool zero1 = cfg.parallel.distributed_optimizer;
  dense_.allocate(zero1 ? std::lcm(int64_t(groups.dp_cp->size()), int64_t(128)) : 1);
  expert_.allocate(zero1 ? std::lcm(int64_t(groups.edp->size()), int64_t(128)) : 1);
  dense_.initialize(uint64_t(cfg.train.seed));
  expert_.initialize(uint64_t(cfg.train.seed));
  for (auto& l : layers_) caches_.push_back(l->make_cache());
}

std::vector<MoELayer*> Model::moe_layers() {
  std::vector<MoELayer*> out;
  for (auto& l : layers_)
    if (l->is_moe()) out.push_back(l->moe());
  return out;
}

int Model::num_moe_layers() const {
  int n = 0;
  for (auto& l : layers_) n += l->is_moe();
  return n;
}

void Model::forward_(const MicroBatch& mb, const MoEStepContext& ctx, std::vector<float>& logits, MicroBatchResult& r) {
  const int64_t N = mb.N(), N_loc = N / tp_size_, Vl = vocab_.rows;
  for (int32_t id : mb.ids_N)
    if (id < 0 || id >= V_) user_error("token id {} is outside the vocabulary [0, {}): the data and [model] vocab disagree", id, V_);
  std::vector<float>& x = x_NH_;  // this rank's SP piece of the residual stream [N_loc, H]
  x.resize(size_t(N_loc * H_));
  if (tp_size_ == 1) {
    ops::embedding_forward(embedding_.w(), mb.ids_N.data(), x.data(), N, H_);
  } else {
    emb_full_.resize(size_t(N * H_));
    vp_embedding_forward(embedding_.w(), mb.ids_N.data(), emb_full_.data(), N, H_, vocab_);
    sp_reduce_scatter(*groups_.tp, emb_full_.data(), N_loc, H_, x.data());
  }
  r.moe.clear();
  // The MoE block sees only this rank's rows: positions and tags of the SP piece.
  MoEStepContext local = ctx;
  local.S_loc = mb.S / tp_size_;
  if (local.positions_N) local.positions_N += tp_rank_ * N_loc;
  if (local.tag_N) local.tag_N += tp_rank_ * N_loc;
  // Router record / replay: one [N, Lm, k] array, each MoE layer reads and writes its own k columns.
  const int64_t Lm = num_moe_layers(), K = cfg_.moe.topk;
  FOLDMOE_CHECK(mb.replay_NLK.empty() || int64_t(mb.replay_NLK.size()) == N * Lm * K,
                "router replay: {} ids for N = {}, {} MoE layers, k = {}", mb.replay_NLK.size(), N, Lm, K);
  FOLDMOE_CHECK(mb.replay_NLK.empty() || tp_size_ == 1, "router replay with tensor parallelism");
  r.routing_NLK.assign(size_t(N * Lm * K), -1);
  int64_t j = 0;
  for (size_t i = 0; i < layers_.size(); ++i) {
    MoEStats stats;
    MoEStepContext lctx = local;
    if (layers_[i]->is_moe()) {
      lctx.replay_experts_NK = mb.replay_NLK.empty() ? nullptr : mb.replay_NLK.data() + j * K;
      lctx.record_experts_NK = tp_size_ == 1 ? r.routing_NLK.data() + j * K : nullptr;
      lctx.replay_stride = Lm * K;
      ++j;
    }
    layers_[i]->forward(x, mb.S, mb.B, mb.positions_N.data(), lctx, *caches_[i], &stats);
    if (layers_[i]->is_moe()) r.moe.push_back(std::move(stats));
  }
  final_out_NH_.resize(size_t(N_loc * H_));
  final_norm_->forward(x.data(), final_out_NH_.data(), N_loc, final_norm_cache_);
  // Head: column-parallel over the vocabulary on the SP-gathered final activations.
  const float* xf = sp_gather(*groups_.tp, final_out_NH_.data(), N_loc, H_, final_full_);
  logits.resize(size_t(N * Vl));
  ops::linear_forward(xf, head_.w(), logits.data(), N, H_, Vl);
}

MicroBatchResult Model::forward_backward(const MicroBatch& mb, const MoEStepContext& ctx_in, std::vector<float>* logits_out) {
  const int64_t N = mb.N();
  MoEStepContext ctx = ctx_in;
  ctx.S_loc = mb.S;
  ctx.B = mb.B;
  ctx.S_full = mb.full_length();
  ctx.valid_N = nullptr;  // the loss mask selects CE targets; every input token is a real token
  ctx.global_seq_B = mb.global_seq_B.data();
  ctx.positions_N = mb.positions_N.data();
  MicroBatchResult r;
  std::vector<float>& logits = logits_NV_;
  forward_(mb, ctx, logits, r);
  if (logits_out) *logits_out = logits;

  // Loss: Σ CE / n_valid, seeded with σ = ctx.loss_seed (spec 03 §7, mean mode) or σ per token.
  // The seed σ does not depend on the loss values, so the CE forward and its backward (in place
  // on the logits) run fused, row by row.
  std::vector<float> ce(static_cast<size_t>(N)), lse(static_cast<size_t>(N)), dce(static_cast<size_t>(N), 0.0f);
  // n_mb: valid tokens of the micro-batch over all CP ranks (spec 03 §7), a constant of the step.
  r.n_valid = mb.valid_count();
  if (groups_.cp->size() > 1) {
    double nv = double(r.n_valid);
    groups_.cp->all_reduce(&nv, 1);
    r.n_valid = int64_t(nv);
  }
  const double per_token = ctx.per_token_loss ? ctx.loss_seed : ctx.loss_seed / double(std::max<int64_t>(r.n_valid, 1));
  for (int64_t n = 0; n < N; ++n) dce[size_t(n)] = mb.mask_N[size_t(n)] ? float(per_token) : 0.0f;
  if (tp_size_ == 1) {
    ops::cross_entropy_forward_backward(logits.data(), mb.targets_N.data(), mb.mask_N.data(), dce.data(), ce.data(),
                                        lse.data(), logits.data(), N, V_);
  } else {  // vocab-parallel: the CE is identical on all TP ranks, each seeds only its shard
    vp_cross_entropy_forward(logits.data(), mb.targets_N.data(), mb.mask_N.data(), ce.data(), lse.data(), N, vocab_,
                             *groups_.tp);
    vp_cross_entropy_backward(logits.data(), mb.targets_N.data(), mb.mask_N.data(), lse.data(), dce.data(),
                              logits.data(), N, vocab_);
  }
  for (int64_t n = 0; n < N; ++n) r.ce_sum += mb.mask_N[size_t(n)] ? double(ce[size_t(n)]) : 0.0;

  // Backward, mirror of forward_.
  const int64_t N_loc = N / tp_size_;
  std::vector<float>&dfinal = dfinal_NH_, &dx = dx_NH_;
  dfinal.resize(size_t(N_loc * H_));
  dx.resize(size_t(N_loc * H_));
  if (tp_size_ == 1) {
    ops::linear_backward(final_out_NH_.data(), head_.w(), logits.data(), dfinal.data(), head_.g(), N, H_, V_);
  } else {
    dfinal_full_.resize(size_t(N * H_));
    ops::linear_backward(final_full_.data(), head_.w(), logits.data(), dfinal_full_.data(), head_.g(), N, H_,
                         vocab_.rows);
    sp_reduce_scatter(*groups_.tp, dfinal_full_.data(), N_loc, H_, dfinal.data());  // partial over TP
  }
  final_norm_->backward(dfinal.data(), dx.data(), N_loc, final_norm_cache_);
  for (size_t i = layers_.size(); i-- > 0;) layers_[i]->backward(dx, mb.S, mb.B, mb.positions_N.data(), *caches_[i]);
  if (tp_size_ == 1) {
    ops::embedding_backward(mb.ids_N.data(), dx.data(), embedding_.g(), N, H_);
  } else {
    const float* d = sp_gather(*groups_.tp, dx.data(), N_loc, H_, dx_full_);
    vp_embedding_backward(mb.ids_N.data(), d, embedding_.g(), N, H_, vocab_);
  }
  return r;
}

MicroBatchResult Model::forward_backward_logits(const MicroBatch& mb, const MoEStepContext& ctx_in,
                                                const LogitsGradFn& loss_grad) {
  // The RL loss needs whole-vocabulary rows per token; RL runs with TP = 1 (rl_trainer checks).
  FOLDMOE_CHECK(tp_size_ == 1, "forward_backward_logits with tensor parallelism");
  const int64_t N = mb.N();
  MoEStepContext ctx = ctx_in;
  ctx.S_loc = mb.S;
  ctx.B = mb.B;
  ctx.S_full = mb.S;
  ctx.valid_N = nullptr;
  ctx.global_seq_B = mb.global_seq_B.data();
  ctx.positions_N = mb.positions_N.data();
  MicroBatchResult r;
  std::vector<float> logits;
  forward_(mb, ctx, logits, r);
  r.n_valid = mb.valid_count();
  std::vector<float> dlogits(size_t(N * V_), 0.0f);
  loss_grad(logits, dlogits);
  FOLDMOE_CHECK(int64_t(dlogits.size()) == N * V_, "loss_grad resized dlogits to {} (expected {})", dlogits.size(),
                N * V_);
  backward_(mb, dlogits);
  return r;
}

void Model::backward_(const MicroBatch& mb, std::vector<float>& dlogits) {
  const int64_t N = mb.N();
  std::vector<float> dfinal(size_t(N * H_)), dx(size_t(N * H_));
  ops::linear_backward(final_out_NH_.data(), head_.w(), dlogits.data(), dfinal.data(), head_.g(), N, H_, V_);
  final_norm_->backward(dfinal.data(), dx.data(), N, final_norm_cache_);
  for (size_t i = layers_.size(); i-- > 0;) layers_[i]->backward(dx, mb.S, mb.B, mb.positions_N.data(), *caches_[i]);
  ops::embedding_backward(mb.ids_N.data(), dx.data(), embedding_.g(), N, H_);
}

void Model::forward_logits(const MicroBatch& mb, std::vector<float>& logits, MicroBatchResult* result) {
  FOLDMOE_CHECK(tp_size_ == 1, "full-vocabulary logits are only formed with one TP rank (evaluation, generation)");
  MoEStepContext ctx;
  ctx.training = false;
  ctx.S_loc = mb.S;
  ctx.B = mb.B;
  ctx.S_full = mb.full_length();
  ctx.global_seq_B = mb.global_seq_B.data();
  ctx.positions_N = mb.positions_N.data();
  MicroBatchResult r;
  forward_(mb, ctx, logits, r);
  if (result) {
    std::vector<float> ce(static_cast<size_t>(mb.N())), lse(static_cast<size_t>(mb.N()));
    ops::cross_entropy_forward(logits.data(), mb.targets_N.data(), mb.mask_N.data(), ce.data(), lse.data(), mb.N(), V_);
    r.n_valid = mb.valid_count();
    for (int64_t n = 0; n < mb.N(); ++n) r.ce_sum += mb.mask_N[size_t(n)] ? double(ce[size_t(n)]) : 0.0;
    *result = std::move(r);
  }
}

std::map<std::string, std::vector<float>> Model::buffers() {
  std::map<std::string, std::vector<float>> out;
  for (int l = 0; l < int(layers_.size()); ++l)
    if (layers_[size_t(l)]->is_moe() && !layers_[size_t(l)]->moe()->expert_bias().empty())
      out["layers." + std::to_string(l) + ".moe.router.expert_bias"] = layers_[size_t(l)]->moe()->expert_bias();
  return out;
}

void Model::set_buffers(const std::map<std::string, std::vector<float>>& buffers) {
  for (int l = 0; l < int(layers_.size()); ++l) {
    if (!layers_[size_t(l)]->is_moe()) continue;
    auto it = buffers.find("layers." + std::to_string(l) + ".moe.router.expert_bias");
    if (it != buffers.end()) layers_[size_t(l)]->moe()->expert_bias() = it->second;
  }
}

void Model::finalize_global_batch() {
  for (MoELayer* m : moe_layers()) m->finalize_global_batch();
}

}  // namespace foldmoe
