// A distributed MoE layer on this rank's tokens and its single-process reference on the full
// token set (docs/moe.md §0 token order): the global batch has DP replicas of B sequences of S
// positions; replica d's rows are n = s·B + b; TP rank t of replica d holds positions
// [t·S/TP, (t+1)·S/TP), i.e. the contiguous row block t of the replica's rows.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "moe/moe_layer.h"
#include "partest_util.h"

namespace foldmoe::partest {

inline Config moe_config(int E, int k = 2, int H = 16, int F = 12, int F_sh = 24) {
  Config c;
  c.model.hidden = H;
  c.model.layers = 2;
  c.model.init_std = 0.5;
  c.moe.num_experts = E;
  c.moe.topk = k;
  c.moe.ffn_hidden_size = F;
  c.moe.shared_expert_ffn_hidden_size = F_sh;
  c.moe.shared_expert_gate = true;
  c.moe.load_balancing_type = {"aux_loss"};
  c.moe.aux_loss_coeff = {0.0};
  c.moe.z_loss_coeff.reset();
  c.train.seed = 17;
  return c;
}

// E divisible by every EP used with it.
inline int experts_for(const Layout& l) { return l.ep == 3 ? 6 : 8; }

struct MoEUnit {
  Config cfg;
  ParamArena dense{ArenaKind::Dense}, expert{ArenaKind::Expert};
  std::unique_ptr<MoELayer> layer;
  std::unique_ptr<MoELayer::Cache> cache;
  MoEStats stats;
  MoEUnit(const Config& c, const ProcessGroups& g) : cfg(c) {
    layer = std::make_unique<MoELayer>(cfg, 0, dense, expert, g);
    dense.allocate();
    expert.allocate();
    dense.initialize(uint64_t(cfg.train.seed));
    expert.initialize(uint64_t(cfg.train.seed));
    cache = layer->make_cache();
  }
  // y, dx of N = S_loc·B rows.
  void run(const float* x, const float* dy, int64_t S_loc, int64_t B, int64_t S_full, std::vector<float>& y,
           std::vector<float>& dx, bool per_token = false) {
    const int64_t N = S_loc * B, H = cfg.model.hidden;
    MoEStepContext ctx;
    ctx.training = true;
    ctx.S_loc = S_loc, ctx.B = B, ctx.S_full = S_full;
    ctx.per_token_loss = per_token;
    ctx.loss_seed = 1.0;
    y.assign(size_t(N * H), 0.0f);
    dx.assign(size_t(N * H), 0.0f);
    layer->forward(x, y.data(), N, ctx, *cache, &stats);
    layer->backward(*cache, dy, dx.data());
  }
};

// The global batch: DP replicas × S positions × B sequences × H, and the upstream gradient.
struct GlobalTokens {
  int64_t DP, S, B, H;
  std::vector<float> x, dy;  // [DP][S·B][H]
  GlobalTokens(int64_t DP_, int64_t S_, int64_t B_, int64_t H_, float dy_scale = 1.0f)
      : DP(DP_), S(S_), B(B_), H(H_) {
    x = randn(DP * S * B * H, 5, "moe-global-x");
    dy = randn(DP * S * B * H, 6, "moe-global-dy", dy_scale);
  }
  int64_t replica_rows() const { return S * B; }
  const float* x_of(int64_t d) const { return x.data() + d * S * B * H; }
  const float* dy_of(int64_t d) const { return dy.data() + d * S * B * H; }
  // Rows of TP rank t of replica d (contiguous block).
  const float* x_loc(int64_t d, int t, int TP) const { return x_of(d) + t * (S / TP) * B * H; }
  const float* dy_loc(int64_t d, int t, int TP) const { return dy_of(d) + t * (S / TP) * B * H; }
};

}  // namespace foldmoe::partest
