// MoELayer: wires router -> capacity -> aux losses -> dispatcher -> experts -> combine -> shared
// expert (docs/moe.md §1–§8), and the backward in reverse.
#include "moe/moe_layer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/bytes.h"
#include "core/check.h"
#include "moe/aux_loss.h"
#include "moe/capacity.h"
#include "moe/dispatcher.h"
#include "moe/experts.h"
#include "moe/moe_layer_cache.h"
#include "moe/router.h"
#include "moe/shared_expert.h"
#include "ops/linear.h"
#include "ops/matmul_precision.h"

namespace foldmoe {
using namespace moe;
}  // namespace foldmoe

void std::default_delete<foldmoe::MoELayer::Cache>::operator()(foldmoe::MoELayer::Cache* p) const {
  delete p;
}

namespace foldmoe {

struct MoELayer::Impl {
  MoEConfig m;
  int layer, E, k, H, F;
  uint64_t seed;
  ProcessGroups groups;
  RouterOptions ropt;
  AuxOptions aopt;
  bool capacity = false;
  double cf = 0;
  DropPolicy policy = DropPolicy::Probs;
  Param router_w, router_b;
  std::vector<float> expert_bias;
  std::vector<double> local_counts;
  GlobalAuxState gstate;
  std::unique_ptr<Experts> experts;
  std::unique_ptr<SharedExpert> shared;
  std::unique_ptr<TokenDispatcher> dispatcher;
  CapacityUnits units;
  int64_t units_S = -1, units_B = -1;
  std::vector<int32_t> cap_scratch;
  AuxWorkspace aux_ws;
};

MoELayer::MoELayer(const Config& cfg, int layer, ParamArena& dense, ParamArena& expert, const ProcessGroups& groups)
    : impl_(std::make_unique<Impl>()) {
  Impl& I = *impl_;
  I.m = cfg.moe;
  I.layer = layer;
  I.E = cfg.moe.num_experts;
  I.k = cfg.moe.topk;
  I.H = cfg.model.hidden;
  I.F = cfg.moe_ffn();
  I.seed = uint64_t(cfg.train.seed);
  I.groups = groups;
  if (I.E < 1) user_error("[moe] num_experts = {}: an MoE layer needs at least one expert", I.E);
  I.ropt = RouterOptions::from(cfg.moe);
  I.aopt = AuxOptions::from(cfg.moe);
  if (cfg.moe.capacity_factor && *cfg.moe.capacity_factor >= 0) {
    I.capacity = true;
    I.cf = *cfg.moe.capacity_factor;
  }
  if (cfg.moe.pad_to_capacity && !I.capacity)
    user_error("[moe] pad_to_capacity = true without capacity_factor: rule M6; set capacity_factor or disable padding");
  if (cfg.moe.drop_policy == "position")
    I.policy = DropPolicy::Position;
  else if (cfg.moe.drop_policy != "probs")
    user_error("[moe] drop_policy = \"{}\": rule M7 needs probs or position", cfg.moe.drop_policy);
  if (!cfg.moe.capacity_partition.empty()) {
    if (cfg.moe.capacity_partition.size() != 2 || cfg.moe.capacity_partition[0] < 1 ||
        cfg.moe.capacity_partition[1] < 1)
      user_error("[moe] capacity_partition must be [tp, cp] with positive entries (rule M11)");
    if (groups.tp->size() != 1 || groups.cp->size() != 1)
      user_error(
          "[moe] capacity_partition is a single-process test option: rule M11 needs TP = CP = 1 (run has "
          "TP = {}, CP = {})",
          groups.tp->size(), groups.cp->size());
  }

  const double std0 = cfg.model.init_std;
  const double std_out = std0 / std::sqrt(2.0 * cfg.model.layers);
  const std::string base = "layers." + std::to_string(layer) + ".moe.";
  ParamSpec w;
  w.name = base + "router.weight";
  w.shape = {I.E, I.H};
  w.init_std = std0;
  w.sequence_parallel = true;
  I.router_w = dense.add(std::move(w));
  if (cfg.moe.router_bias) {
    ParamSpec b;
    b.name = base + "router.bias";
    b.shape = {I.E};
    b.init = InitKind::Zeros;
    b.weight_decay = false;
    b.sequence_parallel = true;
    I.router_b = dense.add(std::move(b));
  }
  if (cfg.moe.enable_expert_bias) {
    I.expert_bias.assign(size_t(I.E), 0.0f);
    I.local_counts.assign(size_t(I.E), 0.0);
  }
  I.experts = std::make_unique<Experts>(layer, I.E, I.H, I.F, groups.ep->size(), groups.ep->rank(), groups.etp->size(),
                                        groups.etp->rank(), std0, std_out, expert);
  if (cfg.moe.shared_expert_ffn_hidden_size > 0)
    I.shared = std::make_unique<SharedExpert>(layer, I.H, cfg.moe.shared_expert_ffn_hidden_size,
                                              cfg.moe.shared_expert_gate, groups.tp, std0, std_out, dense);
  I.dispatcher = make_dispatcher(cfg.moe.dispatcher, groups, I.E);
}

MoELayer::~MoELayer() = default;

std::unique_ptr<MoELayer::Cache> MoELayer::make_cache() const {
  return std::make_unique<Cache>();
}

namespace {

// Buffers that a MoE layer uses only while its forward combines the experts' output or while its
// backward runs: the experts' output rows and every exchange step of the combine, the gradients
// through each dispatch step, the experts' backward scratch. Kept in the layer's cache they stayed
// allocated in every layer of every pooled activation slot (model/model.cpp grows slots and never
// frees them): with EP, 40-60 MiB per layer of bench-small that no one read again. One set per
// thread is lent to the cache for the duration of that phase (a thread runs one layer at a time;
// tests run one pipeline stage per thread), so a rank holds the largest layer's set once.
struct TransientBuffers {
  std::vector<float> y_RH, y_gath, y_recv, y_perm, y_full;
  std::vector<float> dy_perm, dy_recv, dy_gath, dy_sort, dx_gath, dp_gath, dx_recv, dp_recv, dx_perm, dp_perm;
  std::vector<float> dhp_RF, dab_R2F, dx_RH, dp_R;
};

TransientBuffers& transient_buffers() {
  thread_local TransientBuffers t;
  return t;
}

// Swaps the combine's buffers (forward) or the backward's into the cache on construction and back
// out on destruction, exceptions included (O(1): vectors swap their storage).
class LendBuffers {
 public:
  enum Phase { Combine, Backward };
  LendBuffers(MoELayer::Cache& c, Phase phase) : c_(c), phase_(phase) { swap(); }
  ~LendBuffers() { swap(); }
  LendBuffers(const LendBuffers&) = delete;
  LendBuffers& operator=(const LendBuffers&) = delete;

 private:
  void swap() {
    TransientBuffers& t = transient_buffers();
    moe::DispatchState& d = c_.ds;
    moe::ExpertCache& e = c_.ec;
    if (phase_ == Combine) {
      for (auto [a, b] : {std::pair{&t.y_RH, &e.y_RH},
                          {&t.y_gath, &d.y_gath},
                          {&t.y_recv, &d.y_recv},
                          {&t.y_perm, &d.y_perm},
                          {&t.y_full, &d.y_full}})
        a->swap(*b);
    } else {
      for (auto [a, b] : {std::pair{&t.dy_perm, &d.dy_perm},
                          {&t.dy_recv, &d.dy_recv},
                          {&t.dy_gath, &d.dy_gath},
                          {&t.dy_sort, &d.dy_sort},
                          {&t.dx_gath, &d.dx_gath},
                          {&t.dp_gath, &d.dp_gath},
                          {&t.dx_recv, &d.dx_recv},
                          {&t.dp_recv, &d.dp_recv},
                          {&t.dx_perm, &d.dx_perm},
                          {&t.dp_perm, &d.dp_perm},
                          {&t.dhp_RF, &e.dhp_RF},
                          {&t.dab_R2F, &e.dab_R2F},
                          {&t.dx_RH, &e.dx_RH},
                          {&t.dp_R, &e.dp_R}})
        a->swap(*b);
    }
  }
  MoELayer::Cache& c_;
  Phase phase_;
};

}  // namespace

std::vector<float>& MoELayer::expert_bias() {
  return impl_->expert_bias;
}

void MoELayer::forward(const float* x, float* y, int64_t N, const MoEStepContext& ctx, Cache& c, MoEStats* stats) {
  Impl& I = *impl_;
  const int E = I.E;
  const int64_t H = I.H;
  FOLDMOE_CHECK(N == ctx.S_loc * ctx.B, "MoE forward: N = {} but S_loc·B = {}·{}", N, ctx.S_loc, ctx.B);
  FOLDMOE_CHECK(!ctx.recompute || (ctx.training && int64_t(c.daux_NE.size()) >= N * E),
                "MoE recompute without the aux gradients of a first forward");
  c.N = N, c.E = E;
  c.training = ctx.training;
  c.released = false;
  c.ctx = ctx;
  float* xc = ensure(c.x_NH, N * H);
  if (xc != x) std::memcpy(xc, x, size_t(N * H) * sizeof(float));

  // 1. Input jitter (training only).
  c.jitter = ctx.training && I.m.input_jitter_eps && *I.m.input_jitter_eps > 0;
  const float* xr = xc;
  if (c.jitter) {
    float* u = ensure(c.u_NH, N * H);
    jitter_multipliers(I.seed, ctx.step, I.layer, *I.m.input_jitter_eps, ctx.S_loc, ctx.B, ctx.global_seq_B,
                       ctx.positions_N, H, u);
    float* r = ensure(c.xr_NH, N * H);
    for (int64_t i = 0; i < N * H; ++i) r[i] = xc[i] * u[i];
    xr = r;
  }
  // 2. Logits (fp32, also in a bf16 run: routing decisions are the part of an MoE most sensitive to
  // rounding, docs/precision.md).
  float* logits = ensure(c.logits_NE, N * E);
  {
    const ops::MatmulPrecisionScope fp32(ops::MatmulPrecision::F32);
    ops::linear_forward<float>(xr, I.router_w.w(), logits, N, H, E);
  }
  if (I.router_b.valid())
    for (int64_t n = 0; n < N; ++n)
      for (int e = 0; e < E; ++e) logits[n * E + e] += I.router_b.w()[e];

  // 3 + 6. z-loss and aux pieces (training only): gradients precomputed into daux.
  AuxValues aux;
  if (ctx.training && !ctx.recompute) {
    float* daux = ensure(c.daux_NE, N * E);
    std::fill(daux, daux + N * E, 0.0f);
    if (I.aopt.any()) {
      AuxBatch b;
      b.N = N, b.S_loc = ctx.S_loc, b.B = ctx.B, b.S_full = ctx.S_full, b.valid_N = ctx.valid_N;
      b.sigma = ctx.loss_seed, b.per_token = ctx.per_token_loss, b.dp_size = ctx.dp_size;
      // docs/rl.md §12.2 rule 6: under replay the token counts follow the replayed selection.
      b.replay_NK = ctx.replay_experts_NK;
      b.replay_stride = ctx.replay_stride > 0 ? ctx.replay_stride : I.k;
      aux_losses_forward(I.aopt, logits, b, *I.groups.tp_cp, *I.groups.tp_dp_cp, I.gstate, I.aux_ws, c.auxmap_NE, daux,
                         &aux);
    }
  }

  // 4. Selection and combine weights.
  float* probs = ensure(c.probs_NE, N * E);
  uint8_t* map = ensure(c.map_NE, N * E);
  ensure(c.saved_NE, N * E);
  if (ctx.replay_experts_NK && I.capacity)
    user_error("router replay needs a dropless MoE: unset [moe] capacity_factor (docs/rl.md §12.2 rule 5)");
  const int64_t rstride = ctx.replay_stride > 0 ? ctx.replay_stride : I.k;
  route(I.ropt, logits, N, I.expert_bias.empty() ? nullptr : I.expert_bias.data(), probs, map, c.saved_NE.data(),
        ctx.replay_experts_NK, rstride);
  if (ctx.replay_experts_NK && stats && !ctx.recompute) {  // route flips: live top-k vs the record
    std::vector<float> live_probs(size_t(N * E)), live_saved(size_t(N * E));
    std::vector<uint8_t> live_map(size_t(N * E));
    route(I.ropt, logits, N, I.expert_bias.empty() ? nullptr : I.expert_bias.data(), live_probs.data(), live_map.data(),
          live_saved.data());
    stats->flipped_N.assign(size_t(N), 0);
    for (int64_t n = 0; n < N; ++n) {
      if (ctx.replay_experts_NK[n * rstride] < 0) continue;  // routed live
      ++stats->replayed_rows;
      stats->flipped_N[size_t(n)] = !std::equal(map + n * E, map + (n + 1) * E, live_map.data() + n * E);
      stats->flipped_rows += stats->flipped_N[size_t(n)];
    }
  }
  if (ctx.record_experts_NK && !ctx.recompute)
    for (int64_t n = 0; n < N; ++n) {
      int32_t* r = ctx.record_experts_NK + n * rstride;
      for (int e = 0, j = 0; e < E && j < I.k; ++e)
        if (map[n * E + e]) r[j++] = e;
    }

  // 5. Capacity.
  float* fprobs = ensure(c.final_probs_NE, N * E);
  uint8_t* fmap = ensure(c.final_map_NE, N * E);
  if (I.capacity) {
    if (!I.m.capacity_partition.empty() && (I.units_S != ctx.S_loc || I.units_B != ctx.B)) {
      I.units = capacity_partition_units(ctx.S_loc, ctx.B, I.m.capacity_partition[0], I.m.capacity_partition[1]);
      I.units_S = ctx.S_loc, I.units_B = ctx.B;
    }
    static const CapacityUnits kNone;
    apply_capacity(probs, map, N, E, I.k, I.cf, I.policy, I.m.pad_to_capacity,
                   I.m.capacity_partition.empty() ? kNone : I.units, fprobs, fmap, I.cap_scratch);
  } else {
    std::memcpy(fprobs, probs, size_t(N * E) * sizeof(float));
    std::memcpy(fmap, map, size_t(N * E));
  }
  uint8_t* kept = ensure(c.kept_NE, N * E);
  for (int64_t i = 0; i < N * E; ++i) kept[i] = uint8_t(map[i] & fmap[i]);

  // 7. Expert-bias demand counts (pre-capacity, valid tokens, training forward only).
  if (ctx.training && !ctx.recompute && !I.local_counts.empty())
    for (int64_t n = 0; n < N; ++n)
      if (!ctx.valid_N || ctx.valid_N[n])
        for (int e = 0; e < E; ++e) I.local_counts[size_t(e)] += map[n * E + e];

  // Dispatch, experts, combine.
  TokenDispatcher& D = *I.dispatcher;
  D.dispatch_preprocess(xc, fmap, fprobs, N, H, I.m.pad_to_capacity, c.ds);
  D.dispatch_exchange(c.ds);
  D.dispatch_postprocess(c.ds);
  {
    const LendBuffers lent(c, LendBuffers::Combine);
    I.experts->forward(c.ds.rows, c.ds.rows_p, c.ds.tokens_per_local_expert, c.ec);
    D.combine_preprocess(c.ds, c.ec.y_RH.data());
    D.combine_exchange(c.ds);
    D.combine_postprocess(c.ds, y);
  }

  // Shared expert.
  if (I.shared) I.shared->forward(xc, N, y, c.sc);

  if (stats && !ctx.recompute) {
    stats->aux_loss = aux.aux;
    stats->seq_aux_loss = aux.seq;
    stats->global_aux_loss = aux.global;
    stats->z_loss = aux.z;
    stats->routed_E.assign(size_t(E), 0);
    stats->kept_E.assign(size_t(E), 0);
    for (int64_t n = 0; n < N; ++n)
      for (int e = 0; e < E; ++e) {
        stats->routed_E[size_t(e)] += map[n * E + e];
        stats->kept_E[size_t(e)] += kept[n * E + e];
      }
    stats->routed_tag_E.assign(ctx.tag_N ? size_t(ctx.num_tags) * size_t(E) : 0, 0);
    if (ctx.tag_N)
      for (int64_t n = 0; n < N; ++n) {
        const int tag = ctx.tag_N[n];
        if (tag >= ctx.num_tags) continue;
        for (int e = 0; e < E; ++e) stats->routed_tag_E[size_t(tag) * size_t(E) + size_t(e)] += map[n * E + e];
      }
  }
}

void MoELayer::release_activations(Cache& c, bool keep_input) const {
  Cache kept;
  kept.N = c.N, kept.E = c.E;
  kept.training = c.training;
  kept.released = true;
  kept.ctx = c.ctx;
  kept.daux_NE = std::move(c.daux_NE);
  if (keep_input) kept.x_NH = std::move(c.x_NH);
  c = std::move(kept);
}

size_t MoELayer::cache_bytes(const Cache& c) {
  const DispatchState& d = c.ds;
  const ExpertCache& e = c.ec;
  const SharedCache& h = c.sc;
  return vector_bytes(c.x_NH, c.u_NH, c.xr_NH, c.logits_NE, c.probs_NE, c.saved_NE, c.final_probs_NE, c.daux_NE,
                      c.map_NE, c.final_map_NE, c.kept_NE, c.auxmap_NE, c.dprobs_NE, c.dlogits_NE, c.dxr_NH) +
         vector_bytes(d.row_token, d.row_expert, d.input_splits, d.output_splits, d.output_splits_tp, d.chunk_sizes,
                      d.tokens_per_local_expert, d.x_perm, d.p_perm, d.x_recv, d.p_recv, d.x_gath, d.p_gath, d.x_sort,
                      d.p_sort, d.y_gath, d.y_recv, d.y_perm, d.y_full) +
         vector_bytes(d.dy_perm, d.dy_recv, d.dy_gath, d.dy_sort, d.dx_gath, d.dp_gath, d.dx_recv, d.dp_recv, d.dx_perm,
                      d.dp_perm, d.map_f, d.map_gath, d.probs_gath, d.dprobs_full) +
         vector_bytes(e.counts, e.ab_R2F, e.h_RF, e.hp_RF, e.y_RH, e.dhp_RF, e.dab_R2F, e.dx_RH, e.dp_R) +
         vector_bytes(h.x_full, h.ab, h.h, h.y_full, h.y_loc, h.gate, h.dy_loc, h.dy_full, h.dh, h.dab, h.dx_full);
}

void MoELayer::backward(Cache& c, const float* dy, float* dx) {
  Impl& I = *impl_;
  if (c.released) {  // recompute = moe: the forward again from the kept input (output discarded)
    FOLDMOE_CHECK(int64_t(c.x_NH.size()) >= c.N * I.H, "MoE backward after its input was released");
    MoEStepContext ctx = c.ctx;
    ctx.recompute = true;
    std::vector<float> y(size_t(c.N * I.H));
    forward(c.x_NH.data(), y.data(), c.N, ctx, c, nullptr);
  }
  const int E = I.E;
  const int64_t N = c.N, H = I.H;
  TokenDispatcher& D = *I.dispatcher;

  // Combine backward -> experts backward -> dispatch backward (dx overwritten, dprobs).
  const LendBuffers lent(c, LendBuffers::Backward);
  D.combine_backward(c.ds, dy);
  I.experts->backward(c.ec, c.ds.d_rows);
  float* dprobs = ensure(c.dprobs_NE, N * E);
  D.dispatch_backward(c.ds, c.ec.dx_RH.data(), c.ec.dp_R.data(), dx, dprobs);

  // Router backward (docs/moe.md §2.6) plus the attached aux/z-loss gradients (§5).
  float* dl = ensure(c.dlogits_NE, N * E);
  if (c.training)
    std::memcpy(dl, c.daux_NE.data(), size_t(N * E) * sizeof(float));
  else
    std::fill(dl, dl + N * E, 0.0f);
  route_backward(I.ropt, c.saved_NE.data(), c.map_NE.data(), c.kept_NE.data(), dprobs, N, dl);
  const float* xr = c.jitter ? c.xr_NH.data() : c.x_NH.data();
  if (c.jitter) {
    const ops::MatmulPrecisionScope fp32(ops::MatmulPrecision::F32);  // the router's products stay fp32
    float* t = ensure(c.dxr_NH, N * H);
    ops::linear_backward<float>(xr, I.router_w.w(), dl, t, I.router_w.g(), N, H, E);
    const float* u = c.u_NH.data();
    for (int64_t i = 0; i < N * H; ++i) dx[i] += t[i] * u[i];
  } else {
    const ops::MatmulPrecisionScope fp32(ops::MatmulPrecision::F32);
    ops::linear_backward<float>(xr, I.router_w.w(), dl, dx, I.router_w.g(), N, H, E, /*accumulate_dx=*/true);
  }
  if (I.router_b.valid()) {
    float* gb = I.router_b.g();
    for (int64_t n = 0; n < N; ++n)
      for (int e = 0; e < E; ++e) gb[e] += dl[n * E + e];
  }

  if (I.shared) I.shared->backward(c.sc, dy, dx);
}

void MoELayer::finalize_global_batch() {
  Impl& I = *impl_;
  if (!I.expert_bias.empty()) {
    std::vector<double>& c = I.local_counts;
    I.groups.tp_dp_cp->all_reduce(c.data(), int64_t(c.size()));
    double mean = 0;
    for (double v : c) mean += v;
    mean /= double(I.E);
    const float u = float(I.m.bias_update_rate);
    for (int e = 0; e < I.E; ++e) {
      const double d = mean - c[size_t(e)];
      const float sgn = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
      I.expert_bias[size_t(e)] += u * sgn;
    }
    std::fill(c.begin(), c.end(), 0.0);
  }
  I.gstate.reset();
}

}  // namespace foldmoe
