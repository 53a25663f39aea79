#include "moe/experts.h"

#include "parallel/sharding.h"

#include <algorithm>
#include <string>

#include "core/check.h"
#include "moe/dispatcher.h"
#include "ops/linear.h"
#include "ops/swiglu.h"

namespace foldmoe::moe {

namespace {

// Dot product with 8 independent partial sums: one FP accumulator is a serial chain the compiler
// may not reorder, the lanes let it vectorise.
float lane_dot(const float* x, const float* y, int64_t n) {
  float acc[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) acc[l] += x[i + l] * y[i + l];
  for (; i < n; ++i) acc[0] += x[i] * y[i];
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

}  // namespace

Experts::Experts(int layer, int E, int H, int F, int ep_size, int ep_rank, int etp_size, int etp_rank,
                 double init_std, double out_std, ParamArena& arena)
    : H_(H) {
  FOLDMOE_CHECK(arena.kind() == ArenaKind::Expert, "experts must live in the expert arena");
  FOLDMOE_CHECK(E % ep_size == 0 && F % etp_size == 0, "E {} / EP {}, F {} / ETP {}", E, ep_size, F, etp_size);
  nle_ = E / ep_size;
  F_ = F / etp_size;
  const int64_t Fl = F_, Fg = F, Hh = H, r = etp_rank;
  for (int le = 0; le < nle_; ++le) {
    const int e = ep_rank * nle_ + le;
    const std::string base = "layers." + std::to_string(layer) + ".moe.experts." + std::to_string(e);
    ParamSpec s1;
    s1.name = base + ".fc1";
    s1.shape = {2 * Fl, Hh};
    s1.global_shape = {2 * Fg, Hh};
    s1.init_std = init_std;
    s1.global_index = when_sharded(etp_size, paired_row_shard(Fl, Hh, int(r), etp_size));
    fc1_.push_back(arena.add(std::move(s1)));
    ParamSpec s2;
    s2.name = base + ".fc2";
    s2.shape = {Hh, Fl};
    s2.global_shape = {Hh, Fg};
    s2.init_std = out_std;
    s2.global_index = when_sharded(etp_size, col_shard(Hh, Fl, int(r), etp_size));
    fc2_.push_back(arena.add(std::move(s2)));
  }
}

void Experts::forward(const float* x, const float* p, const std::vector<int64_t>& counts, ExpertCache& c) const {
  const int64_t H = H_, F = F_;
  int64_t R = 0;
  for (int64_t m : counts) R += m;
  c.x_RH = x, c.p_R = p, c.counts = counts, c.R = R;
  float* ab = ensure(c.ab_R2F, R * 2 * F);
  float* h = ensure(c.h_RF, R * F);
  float* hp = ensure(c.hp_RF, R * F);
  float* y = ensure(c.y_RH, R * H);
  int64_t o = 0;
  for (int le = 0; le < nle_; ++le) {
    const int64_t m = counts[size_t(le)];
    if (m == 0) continue;
    ops::linear_forward<float>(x + o * H, fc1_[size_t(le)].w(), ab + o * 2 * F, m, H, 2 * F);
    ops::swiglu_forward_scaled(ab + o * 2 * F, p + o, h + o * F, hp + o * F, m, F);
    ops::linear_forward<float>(hp + o * F, fc2_[size_t(le)].w(), y + o * H, m, F, H);
    o += m;
  }
}

void Experts::backward(ExpertCache& c, const float* dy) const {
  const int64_t H = H_, F = F_, R = c.R;
  float* dhp = ensure(c.dhp_RF, R * F);
  float* dab = ensure(c.dab_R2F, R * 2 * F);
  float* dx = ensure(c.dx_RH, R * H);
  float* dp = ensure(c.dp_R, R);
  const float* h = c.h_RF.data();
  int64_t o = 0;
  for (int le = 0; le < nle_; ++le) {
    const int64_t m = c.counts[size_t(le)];
    if (m == 0) continue;  // no rows: weight gradients receive exactly nothing
    // dW2 += dYᵀ·h', dh' = dY·W2.
    ops::linear_backward<float>(c.hp_RF.data() + o * F, fc2_[size_t(le)].w(), dy + o * H, dhp + o * F,
                                fc2_[size_t(le)].g(), m, F, H);
    for (int64_t i = o; i < o + m; ++i) dp[i] = lane_dot(dhp + i * F, h + i * F, F);  // dp = Σ dh'·h
    // dh = dh' ⊙ p, folded into the SwiGLU backward.
    ops::swiglu_backward_scaled(c.ab_R2F.data() + o * 2 * F, dhp + o * F, c.p_R + o, dab + o * 2 * F, m, F);
    ops::linear_backward<float>(c.x_RH + o * H, fc1_[size_t(le)].w(), dab + o * 2 * F, dx + o * H,
                                fc1_[size_t(le)].g(), m, H, 2 * F);
    o += m;
  }
}

}  // namespace foldmoe::moe
