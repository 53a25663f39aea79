// Partitioned aux gradient (docs/moe.md §12 item 8) under mpirun: main loss × 0 (upstream gradient
// 0), σ = 1; the input gradient of each TP partition equals the matching slice of the single-rank
// input gradient (rtol 1e-5, atol 1e-8, elementwise) for aux_loss, seq_aux_loss and z-loss, both
// dispatchers, mean and per-token mode; the router weight gradient summed over the world equals
// the single-rank one summed over replicas. TP ∈ {2, 4} (TP = 3 on 3 ranks). Partitions with
// CP (the spec's (1,2), (2,2), (1,4)) are covered end to end by the parity runs of the `rich`
// variant (seq_aux_loss) on the cp2, cp4, cp2_ep2 and tp2_cp2_ep4 layouts, not here.
#include <gtest/gtest.h>

#include <vector>

#include "moe_parallel_util.h"

using namespace foldmoe;
using namespace foldmoe::partest;

namespace {

const std::vector<Layout> kAuxLayouts = {{2, 1, 2}, {2, 2, 1}, {4, 4, 1}, {4, 1, 4}, {4, 2, 1},
                                         {2, 4, 1}, {3, 1, 3}, {3, 3, 1}, {4, 8, 1}, {2, 2, 2}};

constexpr int64_t kS = 24, kB = 2;

struct AuxKind {
  const char* name;
  void (*apply)(Config&);
};

const AuxKind kAuxKinds[] = {
    {"aux_loss",
     [](Config& c) {
       c.moe.load_balancing_type = {"aux_loss"};
       c.moe.aux_loss_coeff = {0.1};
     }},
    {"seq_aux_loss",
     [](Config& c) {
       c.moe.load_balancing_type = {"seq_aux_loss"};
       c.moe.aux_loss_coeff = {0.1};
     }},
    {"z_loss",
     [](Config& c) {
       c.moe.load_balancing_type = {"none"};
       c.moe.aux_loss_coeff = {0.0};
       c.moe.z_loss_coeff = 0.01;
     }},
};

void partitioned_aux(const Layout& l, const AuxKind& kind, const char* dispatcher, bool per_token) {
  SCOPED_TRACE(l.str() + " " + kind.name + " " + dispatcher + (per_token ? " per-token" : " mean"));
  const ProcessGroups g = layout_groups(l);
  Config cfg = moe_config(experts_for(l));
  kind.apply(cfg);
  cfg.moe.dispatcher = dispatcher;
  const int TP = g.tp->size(), DP = g.dp->size(), t = g.tp->rank();
  const int64_t d = g.dp->rank(), H = cfg.model.hidden, N_loc = kS / TP * kB;
  const GlobalTokens gt(DP, kS, kB, H, /*dy_scale=*/0.0f);  // main loss × 0

  MoEUnit dist(cfg, g);
  std::vector<float> y, dx;
  dist.run(gt.x_loc(d, t, TP), gt.dy_loc(d, t, TP), kS / TP, kB, kS, y, dx, per_token);

  MoEUnit ref(cfg, ProcessGroups::single_process());
  std::vector<float> yr, dxr, dx_mine;
  for (int64_t dd = 0; dd < DP; ++dd) {
    ref.run(gt.x_of(dd), gt.dy_of(dd), kS, kB, kS, yr, dxr, per_token);
    if (dd == d) dx_mine.assign(dxr.begin() + t * N_loc * H, dxr.begin() + (t + 1) * N_loc * H);
  }
  EXPECT_GT(max_abs(dx_mine.data(), int64_t(dx_mine.size())), 1e-6) << "the aux gradient must be non-trivial";
  expect_close(dx, dx_mine, 1e-5, 1e-8, "dx of my partition", /*elementwise=*/true);
  const std::string rw = "layers.0.moe.router.weight";
  const auto got = logical_grads(dist.dense, {rw});
  expect_close(got.at(rw), ref_grad(ref.dense, rw), 1e-5, 1e-8, "router weight grad");
}

}  // namespace

TEST(AuxPartition, InputGradientOfEachTpPartition) {
  for (const Layout& l : fitting(kAuxLayouts))
    for (const AuxKind& k : kAuxKinds)
      for (const char* disp : {"alltoall", "allgather"})
        for (bool per_token : {false, true}) partitioned_aux(l, k, disp, per_token);
}
