#include "moe/shared_expert.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/check.h"
#include "moe/dispatcher.h"
#include "ops/linear.h"
#include "ops/swiglu.h"
#include "parallel/mappings.h"
#include "parallel/sharding.h"

namespace foldmoe::moe {

SharedExpert::SharedExpert(int layer, int H, int F, bool gate, std::shared_ptr<Communicator> tp, double init_std,
                           double out_std, ParamArena& dense)
    : H_(H), gate_(gate), tp_(std::move(tp)) {
  const int T = tp_->size();
  FOLDMOE_CHECK(F % T == 0, "shared_expert_ffn_hidden_size {} not divisible by TP {}", F, T);
  F_ = F / T;
  const int64_t Fl = F_, Fg = F, Hh = H, r = tp_->rank();
  const std::string base = "layers." + std::to_string(layer) + ".moe.";
  ParamSpec s1;
  s1.name = base + "shared.fc1";
  s1.shape = {2 * Fl, Hh};
  s1.global_shape = {2 * Fg, Hh};
  s1.init_std = init_std;
  s1.global_index = when_sharded(T, paired_row_shard(Fl, Hh, int(r), T));
  fc1_ = dense.add(std::move(s1));
  ParamSpec s2;
  s2.name = base + "shared.fc2";
  s2.shape = {Hh, Fl};
  s2.global_shape = {Hh, Fg};
  s2.init_std = out_std;
  s2.global_index = when_sharded(T, col_shard(Hh, Fl, int(r), T));
  fc2_ = dense.add(std::move(s2));
  if (gate_) {
    ParamSpec sg;
    sg.name = base + "shared_gate.weight";
    sg.shape = {1, Hh};
    sg.init_std = init_std;
    sg.sequence_parallel = true;
    gate_w_ = dense.add(std::move(sg));
  }
}

void SharedExpert::forward(const float* x, int64_t N, float* y, SharedCache& c) const {
  const int64_t H = H_, F = F_, NT = N * tp_->size();
  c.x_NH = x, c.N = N;
  c.x_in = sp_gather(*tp_, x, N, H, c.x_full);
  float* ab = ensure(c.ab, NT * 2 * F);
  float* h = ensure(c.h, NT * F);
  // The ungated output stays in y_loc for the gate's backward; with one TP rank fc2 writes it there.
  float* yl = ensure(c.y_loc, N * H);
  float* yf = sp_partial_buffer(*tp_, yl, N, H, c.y_full);
  ops::linear_forward<float>(c.x_in, fc1_.w(), ab, NT, H, 2 * F);
  ops::swiglu_forward<float>(ab, h, NT, F);
  ops::linear_forward<float>(h, fc2_.w(), yf, NT, F, H);  // partial over TP
  sp_reduce_scatter(*tp_, yf, N, H, yl);
  if (gate_) {
    float* g = ensure(c.gate, N);
    const float* w = gate_w_.w();
    for (int64_t n = 0; n < N; ++n) {
      float s = 0;
      for (int64_t k = 0; k < H; ++k) s += w[k] * x[n * H + k];
      g[n] = 1.0f / (1.0f + std::exp(-s));
    }
    for (int64_t n = 0; n < N; ++n)
      for (int64_t k = 0; k < H; ++k) y[n * H + k] += g[n] * yl[n * H + k];
  } else {
    for (int64_t i = 0; i < N * H; ++i) y[i] += yl[i];
  }
}

void SharedExpert::backward(SharedCache& c, const float* dy, float* dx) const {
  const int T = tp_->size();
  const int64_t N = c.N, H = H_, F = F_, NT = N * T;
  const float* x = c.x_NH;
  const float* ds = dy;
  if (gate_) {
    const float* g = c.gate.data();
    const float* s = c.y_loc.data();
    float* d = ensure(c.dy_loc, N * H);
    const float* w = gate_w_.w();
    float* gw = gate_w_.g();
    for (int64_t n = 0; n < N; ++n) {
      float dg = 0;
      for (int64_t k = 0; k < H; ++k) {
        dg += dy[n * H + k] * s[n * H + k];
        d[n * H + k] = g[n] * dy[n * H + k];
      }
      const float dl = dg * g[n] * (1.0f - g[n]);
      for (int64_t k = 0; k < H; ++k) {
        gw[k] += dl * x[n * H + k];
        dx[n * H + k] += dl * w[k];
      }
    }
    ds = d;
  }
  const float* dsf = sp_gather(*tp_, ds, N, H, c.dy_full);
  float* dh = ensure(c.dh, NT * F);
  float* dab = ensure(c.dab, NT * 2 * F);
  ops::linear_backward<float>(c.h.data(), fc2_.w(), dsf, dh, fc2_.g(), NT, F, H);
  ops::swiglu_backward<float>(c.ab.data(), dh, dab, NT, F);
  // The input gradient adds to dx. With one TP rank there is no partial to sum (the mapping hands
  // back dx itself) and the GEMM accumulates into dx; a TP partial is summed over the ranks first.
  float* dxf = sp_partial_buffer(*tp_, dx, N, H, c.dx_full);
  const bool partial = dxf != dx;
  ops::linear_backward<float>(c.x_in, fc1_.w(), dab, dxf, fc1_.g(), NT, H, 2 * F, /*accumulate_dx=*/!partial);
  if (!partial) return;
  float* dl = ensure(c.dy_loc, N * H);  // reuse as the reduce-scatter target
  sp_reduce_scatter(*tp_, dxf, N, H, dl);
  for (int64_t i = 0; i < N * H; ++i) dx[i] += dl[i];
}

}  // namespace foldmoe::moe
