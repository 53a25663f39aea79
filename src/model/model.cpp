#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/bytes.h"
#include "core/check.h"
#include "core/trace.h"
#include "ops/cross_entropy.h"
#include "ops/linear.h"
#include "ops/matmul_precision.h"
#include "parallel/mappings.h"
#include "parallel/pipeline_executor.h"
#include "parallel/sharding.h"

namespace foldmoe {

// The activations of one in-flight (micro-batch, chunk).
struct Model::Slot {
  int64_t S = 0, B = 0;
  std::vector<float> x;    // [N_loc, H] residual stream: the chunk input, then its output
  std::vector<float> x_in; // copy of the chunk input (recompute = full)
  std::vector<float> dx;   // [N_loc, H] gradient of the chunk output, then of its input
  std::vector<std::unique_ptr<TransformerLayer::Cache>> caches;  // one per layer of the chunk
  MoEStepContext ctx;      // of the forward (recompute = full re-runs it)
  // Head chunk.
  RmsNormLayer::Cache final_norm;
  std::vector<float> final_out, dfinal, logits;  // logits turn into dL/dlogits after the loss
  // SP scratch (unused with TP = 1): embedding output, gathered final activations, gradients.
  std::vector<float> emb_full, final_full, dfinal_full, dx_full;
  const float* head_in = nullptr;  // the SP-gathered final activations: final_full, or final_out with TP = 1
};

namespace {
// The pipeline split follows the groups, like every other dimension: a config written by a
// pipelined run still builds the whole model in one process (evaluation, generation).
PipelineLayout layout_for(const Config& cfg, const ProcessGroups& groups) {
  const int pp = groups.pp->size();
  if (pp == 1) return PipelineLayout::even(cfg.model.layers, 1, 1);
  FOLDMOE_CHECK(pp == cfg.parallel.pp, "pipeline group has {} ranks but [parallel] pp = {}", pp, cfg.parallel.pp);
  return PipelineLayout::of(cfg.model.layers, pp, cfg.parallel.vpp, cfg.parallel.pipeline_layers);
}
}  // namespace

Model::Model(const Config& cfg, const ProcessGroups& groups)
    : cfg_(cfg), groups_(groups), H_(cfg.model.hidden), V_(cfg.model.vocab), layout_(layout_for(cfg, groups)) {
  FOLDMOE_CHECK(V_ > 0, "vocabulary size must be resolved before building the model");
  tp_size_ = groups.tp->size();
  tp_rank_ = groups.tp->rank();
  stage_ = groups.pp->rank();
  recompute_ = cfg.train.recompute == "full" ? Recompute::Full
               : cfg.train.recompute == "moe" ? Recompute::Moe
                                              : Recompute::None;
  precision_ = ops::parse_precision(cfg.train.precision);
  // Vocab-parallel rows (docs/dense-parallel.md §3.1); with one TP rank the exact vocabulary.
  vocab_ = VocabShard::split(V_, tp_size_, tp_rank_);
  const double std_in = cfg.model.init_std;
  auto vocab_param = [&](const char* name) {
    return dense_.add({.name = name, .shape = {vocab_.rows, H_}, .global_shape = {V_, H_}, .init_std = std_in,
                       .global_index = when_sharded(tp_size_, vocab_shard(vocab_.rows, H_, tp_rank_, V_))});
  };
  // Parameter values are f(seed, name, global index), so a stage builds exactly the values the
  // one-process model has for its layers.
  if (layout_.stage_has_embedding(stage_)) embedding_ = vocab_param("embedding.weight");
  std::vector<int> moe_index(size_t(cfg.model.layers), -1);  // model-wide MoE index of each layer
  for (int l = 0; l < cfg.model.layers; ++l)
    if (cfg.is_moe_layer(l)) moe_index[size_t(l)] = num_moe_global_++;
  chunks_.resize(size_t(layout_.vpp()));
  for (int c = 0; c < layout_.vpp(); ++c)
    for (int l : layout_.layers_of(stage_, c)) {
      LocalLayer ll;
      ll.global = l;
      ll.moe_index = moe_index[size_t(l)];
      ll.layer = std::make_unique<TransformerLayer>(cfg, l, dense_, expert_, groups_);
      chunks_[size_t(c)].push_back(std::move(ll));
    }
  if (layout_.stage_has_head(stage_)) {
    final_norm_ = std::make_unique<RmsNormLayer>("final_norm.weight", H_, cfg.model.norm_eps, dense_, true);
    // Tied embeddings (model.tie_embeddings): with one stage the head is the embedding parameter
    // itself and both uses accumulate into its one gradient; with PP the last stage holds a copy
    // whose gradient reduce_tied_embedding_grads() sums with the first stage's.
    if (!cfg.model.tie_embeddings)
      head_ = vocab_param("lm_head.weight");
    else if (embedding_.valid())
      head_ = embedding_;
    else {  // PP > 1: a copy of the first stage's embedding, same name and so the same values
      ParamSpec copy{.name = "embedding.weight",
                     .shape = {vocab_.rows, H_},
                     .global_shape = {V_, H_},
                     .init_std = std_in,
                     .global_index = when_sharded(tp_size_, vocab_shard(vocab_.rows, H_, tp_rank_, V_))};
      copy.tied_copy = true;
      head_ = dense_.add(std::move(copy));
    }
  }
  // The distributed optimizer shards whole arenas over dp_cp / edp (docs/dense-parallel.md §9.1).
  const bool zero1 = cfg.parallel.distributed_optimizer;
  dense_.allocate(zero1 ? std::lcm(int64_t(groups.dp_cp->size()), int64_t(128)) : 1);
  expert_.allocate(zero1 ? std::lcm(int64_t(groups.edp->size()), int64_t(128)) : 1);
  dense_.initialize(uint64_t(cfg.train.seed));
  expert_.initialize(uint64_t(cfg.train.seed));
  free_.resize(chunks_.size());
}

Model::~Model() = default;

void Model::reduce_tied_embedding_grads() {
  if (!cfg_.model.tie_embeddings || !groups_.embedding || groups_.embedding->size() == 1) return;
  // The embedding group is [first, last] stage: each holds one copy and the sum is the gradient of
  // the one logical parameter (docs/dense-parallel.md §3.4).
  const Param& p = embedding_.valid() ? embedding_ : head_;
  groups_.embedding->all_reduce(p.g(), p.numel());
}

std::vector<MoELayer*> Model::moe_layers() {
  std::vector<MoELayer*> out;
  for (auto& chunk : chunks_)
    for (LocalLayer& l : chunk)
      if (l.layer->is_moe()) out.push_back(l.layer->moe());
  return out;
}

// ---------------------------------------------------------------------------------------------
// Slots

Model::Slot& Model::slot_(int m, int c, const MicroBatch* mb) {
  auto it = live_.find({m, c});
  if (it != live_.end()) return *it->second;
  FOLDMOE_CHECK(mb, "pipeline: no activations of micro-batch {} chunk {}", m, c);
  FOLDMOE_CHECK(c >= 0 && c < int(chunks_.size()), "pipeline: chunk {} out of range", c);
  std::unique_ptr<Slot> s;
  auto& pool = free_[size_t(c)];
  if (!pool.empty()) {
    s = std::move(pool.back());
    pool.pop_back();
  } else {
    s = std::make_unique<Slot>();
    for (LocalLayer& l : chunks_[size_t(c)]) s->caches.push_back(l.layer->make_cache());
  }
  s->S = mb->S, s->B = mb->B;
  s->x.resize(size_t(activation_rows(*mb) * H_));
  Slot& ref = *s;
  live_.emplace(std::make_pair(m, c), std::move(s));
  peak_live_ = std::max(peak_live_, int(live_.size()));
  return ref;
}

Model::Slot& Model::live_slot_(int m, int c, const char* what) {
  auto it = live_.find({m, c});
  FOLDMOE_CHECK(it != live_.end(), "pipeline: {} of micro-batch {} chunk {} before its forward", what, m, c);
  return *it->second;
}

size_t Model::live_activation_bytes() const {
  size_t n = 0;
  for (const auto& [key, s] : live_) {
    n += vector_bytes(s->x, s->x_in, s->dx, s->final_norm.x_NH, s->final_norm.rstd_N, s->final_out, s->dfinal,
                      s->logits, s->emb_full, s->final_full, s->dfinal_full, s->dx_full);
    for (const auto& c : s->caches) n += TransformerLayer::cache_bytes(*c);
  }
  for (const auto& [key, g] : pending_grads_) n += vector_bytes(g);
  return n;
}

void Model::free_slot_(int m, int c) {
  auto it = live_.find({m, c});
  FOLDMOE_CHECK(it != live_.end(), "pipeline: no slot of micro-batch {} chunk {}", m, c);
  free_[size_t(c)].push_back(std::move(it->second));
  live_.erase(it);
}

void Model::release(int m, int c) {
  auto it = pending_grads_.find({m, c});
  FOLDMOE_CHECK(it != pending_grads_.end(), "pipeline: release of micro-batch {} chunk {} before its backward", m, c);
  spare_grads_.push_back(std::move(it->second));
  pending_grads_.erase(it);
}

std::span<float> Model::stage_input(int m, int c, const MicroBatch& mb) {
  FOLDMOE_CHECK(!layout_.has_embedding(stage_, c), "pipeline: the embedding chunk receives no activations");
  Slot& s = slot_(m, c, &mb);
  return {s.x.data(), s.x.size()};
}

std::span<const float> Model::stage_output(int m, int c) {
  Slot& s = live_slot_(m, c, "send of the output");
  return {s.x.data(), s.x.size()};
}

std::span<float> Model::stage_output_grad(int m, int c) {
  FOLDMOE_CHECK(!layout_.has_head(stage_, c), "pipeline: the head chunk receives no gradient");
  Slot& s = live_slot_(m, c, "receive of the output gradient");
  s.dx.resize(s.x.size());
  return {s.dx.data(), s.dx.size()};
}

std::span<const float> Model::stage_input_grad(int m, int c) {
  auto it = pending_grads_.find({m, c});
  FOLDMOE_CHECK(it != pending_grads_.end(), "pipeline: input gradient of micro-batch {} chunk {} sent before its "
                "backward", m, c);
  return {it->second.data(), it->second.size()};
}

// ---------------------------------------------------------------------------------------------
// Pieces of the forward and backward

MoEStepContext Model::full_context_(const MicroBatch& mb, const MoEStepContext& in) const {
  MoEStepContext ctx = in;
  ctx.S_loc = mb.S;
  ctx.B = mb.B;
  ctx.S_full = mb.full_length();
  ctx.valid_N = nullptr;  // the loss mask selects CE targets; every input token is a real token
  ctx.global_seq_B = mb.global_seq_B.data();
  ctx.positions_N = mb.positions_N.data();
  return ctx;
}

void Model::embed_(const MicroBatch& mb, Slot& s) {
  const int64_t N = mb.N(), N_loc = activation_rows(mb);
  for (int32_t id : mb.ids_N)
    if (id < 0 || id >= V_) user_error("token id {} is outside the vocabulary [0, {}): the data and [model] vocab disagree", id, V_);
  s.x.resize(size_t(N_loc * H_));
  float* e = sp_partial_buffer(*groups_.tp, s.x.data(), N_loc, H_, s.emb_full);
  vp_embedding_forward(embedding_.w(), mb.ids_N.data(), e, N, H_, vocab_);  // partial over TP
  sp_reduce_scatter(*groups_.tp, e, N_loc, H_, s.x.data());
}

void Model::layers_forward_(int c, const MicroBatch& mb, const MoEStepContext& ctx, Slot& s, ChunkResult* r,
                            std::vector<int32_t>* routing_NLK) {
  const int64_t N = mb.N(), N_loc = activation_rows(mb);
  // The MoE block sees only this rank's rows: positions and tags of the SP piece.
  MoEStepContext local = ctx;
  local.S_loc = mb.S / tp_size_;
  if (local.positions_N) local.positions_N += tp_rank_ * N_loc;
  if (local.tag_N) local.tag_N += tp_rank_ * N_loc;
  // Router record / replay: one [N, Lm, k] array over the model's MoE layers; each MoE layer reads
  // and writes its own k columns.
  const int64_t Lm = num_moe_global_, K = cfg_.moe.topk;
  FOLDMOE_CHECK(mb.replay_NLK.empty() || int64_t(mb.replay_NLK.size()) == N * Lm * K,
                "router replay: {} ids for N = {}, {} MoE layers, k = {}", mb.replay_NLK.size(), N, Lm, K);
  FOLDMOE_CHECK(mb.replay_NLK.empty() || tp_size_ == 1, "router replay with tensor parallelism");
  auto& layers = chunks_[size_t(c)];
  for (size_t i = 0; i < layers.size(); ++i) {
    LocalLayer& L = layers[i];
    MoEStats stats;
    MoEStepContext lctx = local;
    if (L.moe_index >= 0) {
      lctx.replay_experts_NK = mb.replay_NLK.empty() ? nullptr : mb.replay_NLK.data() + L.moe_index * K;
      lctx.record_experts_NK = routing_NLK && tp_size_ == 1 ? routing_NLK->data() + L.moe_index * K : nullptr;
      lctx.replay_stride = Lm * K;
    }
    L.layer->forward(s.x, mb.S, mb.B, mb.positions_N.data(), lctx, *s.caches[i], &stats);
    if (r && L.moe_index >= 0) r->moe.emplace_back(L.moe_index, std::move(stats));
  }
}

void Model::head_forward_(Slot& s) {
  const int64_t N = s.S * s.B, N_loc = N / tp_size_;
  s.final_out.resize(size_t(N_loc * H_));
  final_norm_->forward(s.x.data(), s.final_out.data(), N_loc, s.final_norm);
  // Head: column-parallel over the vocabulary on the SP-gathered final activations.
  s.head_in = sp_gather(*groups_.tp, s.final_out.data(), N_loc, H_, s.final_full);
  s.logits.resize(size_t(N * vocab_.rows));
  ops::linear_forward(s.head_in, head_.w(), s.logits.data(), N, H_, vocab_.rows);
}

void Model::loss_(const MicroBatch& mb, const MoEStepContext& ctx, Slot& s, ChunkResult& r) {
  // Loss: Σ CE / n_valid, seeded with σ = ctx.loss_seed (docs/dense-parallel.md §7, mean mode) or σ per token.
  // The seed σ does not depend on the loss values, so the CE forward and its backward (in place
  // on the logits) run fused, row by row.
  const int64_t N = mb.N();
  std::vector<float> ce(static_cast<size_t>(N)), lse(static_cast<size_t>(N)), dce(static_cast<size_t>(N), 0.0f);
  // n_mb: valid tokens of the micro-batch over all CP ranks (docs/dense-parallel.md §7), a constant of the step.
  r.has_loss = true;
  r.n_valid = mb.valid_count();
  double nv = double(r.n_valid);
  groups_.cp->all_reduce(&nv, 1);
  r.n_valid = int64_t(nv);
  const double per_token = ctx.per_token_loss ? ctx.loss_seed : ctx.loss_seed / double(std::max<int64_t>(r.n_valid, 1));
  for (int64_t n = 0; n < N; ++n) dce[size_t(n)] = mb.mask_N[size_t(n)] ? float(per_token) : 0.0f;
  // Vocab-parallel: the CE is identical on all TP ranks, each seeds only its shard.
  float* logits = s.logits.data();
  vp_cross_entropy_forward_backward(logits, mb.targets_N.data(), mb.mask_N.data(), dce.data(), ce.data(), lse.data(),
                                    logits, N, vocab_, *groups_.tp);
  r.ce_sum = 0;
  for (int64_t n = 0; n < N; ++n) r.ce_sum += mb.mask_N[size_t(n)] ? double(ce[size_t(n)]) : 0.0;
  if (capture_.logprobs) {
    r.logprob_N.resize(size_t(N));
    for (int64_t n = 0; n < N; ++n) r.logprob_N[size_t(n)] = -ce[size_t(n)];
  }
}

void Model::head_backward_(Slot& s) {
  const int64_t N = s.S * s.B, N_loc = N / tp_size_;
  s.dfinal.resize(size_t(N_loc * H_));
  s.dx.resize(size_t(N_loc * H_));
  float* df = sp_partial_buffer(*groups_.tp, s.dfinal.data(), N_loc, H_, s.dfinal_full);
  ops::linear_backward(s.head_in, head_.w(), s.logits.data(), df, head_.g(), N, H_, vocab_.rows);  // partial over TP
  sp_reduce_scatter(*groups_.tp, df, N_loc, H_, s.dfinal.data());
  final_norm_->backward(s.dfinal.data(), s.dx.data(), N_loc, s.final_norm);
}

void Model::layers_backward_(int c, const MicroBatch& mb, Slot& s) {
  auto& layers = chunks_[size_t(c)];
  for (size_t i = layers.size(); i-- > 0;) layers[i].layer->backward(s.dx, mb.S, mb.B, mb.positions_N.data(), *s.caches[i]);
}

void Model::embed_backward_(const MicroBatch& mb, Slot& s) {
  const int64_t N = mb.N(), N_loc = activation_rows(mb);
  const float* d = sp_gather(*groups_.tp, s.dx.data(), N_loc, H_, s.dx_full);
  vp_embedding_backward(mb.ids_N.data(), d, embedding_.g(), N, H_, vocab_);
}

// ---------------------------------------------------------------------------------------------
// Pipeline stage API

ChunkResult Model::stage_forward(int m, int c, const MicroBatch& mb, const MoEStepContext& ctx_in) {
  const ops::MatmulPrecisionScope precision(precision_);
  const bool embeds = layout_.has_embedding(stage_, c), head = layout_.has_head(stage_, c);
  FOLDMOE_CHECK(embeds || live_.count({m, c}), "pipeline: forward of micro-batch {} chunk {} before its input arrived",
                m, c);
  Slot& s = slot_(m, c, &mb);
  const MoEStepContext ctx = full_context_(mb, ctx_in);
  ChunkResult r;
  r.micro_batch = m;
  if (embeds) embed_(mb, s);
  if (recompute_ == Recompute::Full) {
    s.x_in = s.x;
    s.ctx = ctx;
  }
  layers_forward_(c, mb, ctx, s, &r, nullptr);
  if (recompute_ != Recompute::None) {
    auto& layers = chunks_[size_t(c)];
    for (size_t i = 0; i < layers.size(); ++i)
      layers[i].layer->release_activations(*s.caches[i], /*moe_only=*/recompute_ == Recompute::Moe);
  }
  if (head) {
    head_forward_(s);
    if (capture_.logits) {  // before the loss turns the logits into their gradient
      r.logits_NV = s.logits;
      r.vocab_first = vocab_.first;
      r.vocab_rows = vocab_.rows;
      r.vocab_valid = vocab_.valid();
    }
    loss_(mb, ctx, s, r);
  }
  if (track_bytes_) peak_bytes_ = std::max(peak_bytes_, live_activation_bytes());
  return r;
}

void Model::stage_backward(int m, int c, const MicroBatch& mb) {
  const ops::MatmulPrecisionScope precision(precision_);
  Slot& s = live_slot_(m, c, "backward");
  if (layout_.has_head(stage_, c)) head_backward_(s);
  FOLDMOE_CHECK(int64_t(s.dx.size()) == activation_rows(mb) * H_, "pipeline: backward of micro-batch {} chunk {} "
                "without its output gradient", m, c);
  if (recompute_ == Recompute::Full) {  // the chunk's forward again from its kept input
    MoEStepContext ctx = s.ctx;
    ctx.recompute = true;
    s.x = s.x_in;
    layers_forward_(c, mb, ctx, s, nullptr, nullptr);
    if (track_bytes_) peak_bytes_ = std::max(peak_bytes_, live_activation_bytes());
  }
  layers_backward_(c, mb, s);
  if (layout_.has_embedding(stage_, c)) {
    embed_backward_(mb, s);
  } else {  // the input gradient waits for its send; the activations are free now
    std::vector<float> g;
    if (!spare_grads_.empty()) {
      g = std::move(spare_grads_.back());
      spare_grads_.pop_back();
    }
    g.swap(s.dx);
    pending_grads_[{m, c}] = std::move(g);
  }
  free_slot_(m, c);
}

void Model::run_pipeline(const std::vector<MicroBatch>& mbs, const std::vector<MoEStepContext>& ctxs,
                         const std::function<void(const ChunkResult&)>& on_forward) {
  FOLDMOE_CHECK(mbs.size() == ctxs.size() && !mbs.empty(), "pipeline step with {} micro-batches and {} contexts",
                mbs.size(), ctxs.size());
  PipelineCallbacks cb;
  // Labels only matter while a profiled step records (docs/observability.md §3).
  const auto label = [](const char* what, int m, int c) {
    return trace::recording() ? fmt::format("{} mb{} chunk{}", what, m, c) : std::string();
  };
  cb.forward = [&](int m, int c) {
    const trace::PhaseScope timed(trace::Phase::Forward, label("forward", m, c));
    const ChunkResult r = stage_forward(m, c, mbs[size_t(m)], ctxs[size_t(m)]);
    if (on_forward) on_forward(r);
  };
  cb.backward = [&](int m, int c) {
    const trace::PhaseScope timed(trace::Phase::Backward, label("backward", m, c));
    stage_backward(m, c, mbs[size_t(m)]);
  };
  cb.send_buffer = [&](const PipeAction& a) {
    return a.op == PipeOp::SendForward ? stage_output(a.microbatch, a.chunk) : stage_input_grad(a.microbatch, a.chunk);
  };
  cb.recv_buffer = [&](const PipeAction& a) {
    return a.op == PipeOp::RecvForward ? stage_input(a.microbatch, a.chunk, mbs[size_t(a.microbatch)])
                                       : stage_output_grad(a.microbatch, a.chunk);
  };
  cb.after_send = [&](const PipeAction& a) {
    if (a.op == PipeOp::SendBackward) release(a.microbatch, a.chunk);
  };
  run_pipeline_step({.pp = layout_.pp(), .micro_batches = int(mbs.size()), .vpp = layout_.vpp()}, *groups_.pp, cb);
  FOLDMOE_CHECK(live_slots() == 0, "pipeline step left {} activation slots alive", live_slots());
}

void Model::run_pipeline_forward(const std::vector<MicroBatch>& mbs, const std::vector<MoEStepContext>& ctxs,
                                 const std::function<void(const ChunkResult&)>& on_forward) {
  FOLDMOE_CHECK(mbs.size() == ctxs.size() && !mbs.empty(), "pipeline forward with {} micro-batches and {} contexts",
                mbs.size(), ctxs.size());
  const PipeScheduleSpec spec{.pp = layout_.pp(), .micro_batches = int(mbs.size()), .vpp = layout_.vpp()};
  // Dropping the backward-direction events from every stage's list keeps one consistent global
  // order of the remaining transfers, so the forward-only lists stay deadlock-free.
  std::vector<PipeAction> actions;
  for (const PipeAction& a : pipeline_schedule(spec, groups_.pp->rank()))
    if (a.is_forward_direction()) actions.push_back(a);
  PipelineCallbacks cb;
  cb.forward = [&](int m, int c) {
    const ChunkResult r = stage_forward(m, c, mbs[size_t(m)], ctxs[size_t(m)]);
    if (on_forward) on_forward(r);
    if (layout_.has_head(stage_, c)) free_slot_(m, c);  // nothing to send on
  };
  cb.send_buffer = [&](const PipeAction& a) { return stage_output(a.microbatch, a.chunk); };
  cb.recv_buffer = [&](const PipeAction& a) { return stage_input(a.microbatch, a.chunk, mbs[size_t(a.microbatch)]); };
  cb.after_send = [&](const PipeAction& a) { free_slot_(a.microbatch, a.chunk); };
  run_pipeline_actions(spec, groups_.pp->rank(), actions, *groups_.pp, cb);
  FOLDMOE_CHECK(live_slots() == 0, "pipeline forward left {} activation slots alive", live_slots());
}

// ---------------------------------------------------------------------------------------------
// One-stage conveniences (tests, reference dump, RL, evaluation)

Model::Slot& Model::whole_forward_(const MicroBatch& mb, const MoEStepContext& ctx, ChunkResult& cr,
                                   MicroBatchResult& r) {
  const ops::MatmulPrecisionScope precision(precision_);
  FOLDMOE_CHECK(layout_.pp() == 1, "the whole-model forward needs the whole model on one pipeline stage");
  Slot& s = slot_(-1, 0, &mb);
  r.routing_NLK.assign(size_t(mb.N() * num_moe_global_ * cfg_.moe.topk), -1);
  embed_(mb, s);
  layers_forward_(0, mb, ctx, s, &cr, &r.routing_NLK);
  head_forward_(s);
  return s;
}

void Model::whole_backward_(const MicroBatch& mb, Slot& s, ChunkResult& cr, MicroBatchResult& r) {
  const ops::MatmulPrecisionScope precision(precision_);
  head_backward_(s);
  layers_backward_(0, mb, s);
  embed_backward_(mb, s);
  free_slot_(-1, 0);
  for (auto& [idx, st] : cr.moe) r.moe.push_back(std::move(st));
}

MicroBatchResult Model::forward_backward(const MicroBatch& mb, const MoEStepContext& ctx_in, std::vector<float>* logits_out) {
  const MoEStepContext ctx = full_context_(mb, ctx_in);
  MicroBatchResult r;
  ChunkResult cr;
  Slot& s = whole_forward_(mb, ctx, cr, r);
  if (logits_out) *logits_out = s.logits;
  loss_(mb, ctx, s, cr);
  r.ce_sum = cr.ce_sum;
  r.n_valid = cr.n_valid;
  whole_backward_(mb, s, cr, r);
  return r;
}

MicroBatchResult Model::forward_backward_logits(const MicroBatch& mb, const MoEStepContext& ctx_in,
                                                const LogitsGradFn& loss_grad) {
  // The RL loss needs whole-vocabulary rows per token; RL runs with TP = PP = 1 (rl/trainer.cpp checks).
  FOLDMOE_CHECK(tp_size_ == 1, "forward_backward_logits with tensor parallelism");
  const int64_t N = mb.N();
  MoEStepContext ctx = full_context_(mb, ctx_in);
  ctx.S_full = mb.S;
  MicroBatchResult r;
  ChunkResult cr;
  Slot& s = whole_forward_(mb, ctx, cr, r);
  r.n_valid = mb.valid_count();
  std::vector<float> dlogits(size_t(N * V_), 0.0f);
  loss_grad(s.logits, dlogits);
  FOLDMOE_CHECK(int64_t(dlogits.size()) == N * V_, "loss_grad resized dlogits to {} (expected {})", dlogits.size(),
                N * V_);
  s.logits.swap(dlogits);
  whole_backward_(mb, s, cr, r);
  return r;
}

void Model::forward_logits(const MicroBatch& mb, std::vector<float>& logits, MicroBatchResult* result) {
  FOLDMOE_CHECK(tp_size_ == 1, "full-vocabulary logits are only formed with one TP rank (evaluation, generation)");
  const int64_t N = mb.N();
  MoEStepContext ctx;
  ctx.training = false;
  ctx = full_context_(mb, ctx);
  MicroBatchResult r;
  ChunkResult cr;
  Slot& s = whole_forward_(mb, ctx, cr, r);
  logits.swap(s.logits);
  free_slot_(-1, 0);
  if (result) {
    std::vector<float> ce(static_cast<size_t>(N)), lse(static_cast<size_t>(N));
    ops::cross_entropy_forward(logits.data(), mb.targets_N.data(), mb.mask_N.data(), ce.data(), lse.data(), N, V_);
    r.n_valid = mb.valid_count();
    for (int64_t n = 0; n < N; ++n) r.ce_sum += mb.mask_N[size_t(n)] ? double(ce[size_t(n)]) : 0.0;
    for (auto& [idx, st] : cr.moe) r.moe.push_back(std::move(st));
    *result = std::move(r);
  }
}

// ---------------------------------------------------------------------------------------------
// State

std::map<std::string, std::vector<float>> Model::buffers() {
  std::map<std::string, std::vector<float>> out;
  for (auto& chunk : chunks_)
    for (LocalLayer& l : chunk)
      if (l.layer->is_moe() && !l.layer->moe()->expert_bias().empty())
        out["layers." + std::to_string(l.global) + ".moe.router.expert_bias"] = l.layer->moe()->expert_bias();
  return out;
}

void Model::set_buffers(const std::map<std::string, std::vector<float>>& buffers) {
  for (auto& chunk : chunks_)
    for (LocalLayer& l : chunk) {
      if (!l.layer->is_moe()) continue;
      auto it = buffers.find("layers." + std::to_string(l.global) + ".moe.router.expert_bias");
      if (it != buffers.end()) l.layer->moe()->expert_bias() = it->second;
    }
}

void Model::finalize_global_batch() {
  for (MoELayer* m : moe_layers()) m->finalize_global_batch();
}

}  // namespace foldmoe
