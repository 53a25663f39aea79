// The full MoE layer under mpirun (docs/moe.md §12 items 4 and 7, docs/dense-parallel.md §12):
//  - AllGather == AlltoAll: same layout, weights and tokens; outputs, input gradients and every
//    local parameter gradient within 1e-6 absolute at O(1) scale, i.e. 1e-6·(1 + |x| + max|x|)
//    (dropless, capacity with and without padding, zero tokens to some EP ranks).
//  - Sharded vs unsharded: each rank's tokens (its SP piece of its DP slice) through the
//    distributed layer vs the single-process layer on each replica's full token set (capacity
//    runs use capacity_partition = [TP, 1], docs/moe.md §3.5): local output rows and input gradients
//    (rel 1e-5), and router, shared-expert, gate and expert weight gradients summed over the world
//    through the global index maps vs the single-process gradients summed over replicas.
//  - Zero tokens: expert bias forces every token onto experts 0..k−1, so other EP ranks receive
//    nothing; the layer matches the reference and those experts' gradients are exactly 0.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "../unit/moe_cache_inspect.h"
#include "moe_parallel_util.h"

using namespace foldmoe;
using namespace foldmoe::partest;

namespace {

const std::vector<Layout> kMoELayouts = {{1, 2, 1}, {2, 1, 2}, {2, 2, 1}, {2, 4, 1}, {4, 2, 1}, {2, 2, 2},
                                         {1, 4, 1}, {4, 4, 1}, {1, 2, 2}, {1, 3, 1}, {3, 3, 1}, {3, 1, 3},
                                         {2, 8, 1}, {4, 1, 4}};

constexpr int64_t kS = 24, kB = 2;

struct Variant {
  std::string name;
  std::function<void(Config&)> apply;
  bool force_zero = false;  // expert bias routes everything to experts 0..k−1
};

const std::vector<Variant> kVariants = {
    {"dropless+aux+z",
     [](Config& c) {
       c.moe.aux_loss_coeff = {0.01};
       c.moe.z_loss_coeff = 0.001;
     }},
    {"capacity0.7", [](Config& c) { c.moe.capacity_factor = 0.7; }},
    {"capacity0.7+pad",
     [](Config& c) {
       c.moe.capacity_factor = 0.7;
       c.moe.pad_to_capacity = true;
     }},
    {"capacity0.7+position+seqaux",
     [](Config& c) {
       c.moe.capacity_factor = 0.7;
       c.moe.drop_policy = "position";
       c.moe.load_balancing_type = {"seq_aux_loss"};
       c.moe.aux_loss_coeff = {0.01};
     }},
    {"zero-tokens",
     [](Config& c) {
       c.moe.score_function = "sigmoid";
       c.moe.enable_expert_bias = true;
     },
     true},
};

void force_routing(MoEUnit& u) {
  std::vector<float>& bias = u.layer->expert_bias();
  ASSERT_EQ(int(bias.size()), u.cfg.moe.num_experts);
  for (int e = 0; e < u.cfg.moe.topk; ++e) bias[size_t(e)] = 10.0f;
}

void allgather_equals_alltoall(const Layout& l, const Variant& v) {
  SCOPED_TRACE(l.str() + " " + v.name);
  const ProcessGroups g = layout_groups(l);
  Config cfg = moe_config(experts_for(l));
  v.apply(cfg);
  const int TP = g.tp->size();
  const GlobalTokens gt(g.dp->size(), kS, kB, cfg.model.hidden);
  const int64_t d = g.dp->rank();
  const int t = g.tp->rank();
  Config c1 = cfg, c2 = cfg;
  c1.moe.dispatcher = "alltoall";
  c2.moe.dispatcher = "allgather";
  MoEUnit a(c1, g), b(c2, g);
  if (v.force_zero) force_routing(a), force_routing(b);
  std::vector<float> ya, dxa, yb, dxb;
  a.run(gt.x_loc(d, t, TP), gt.dy_loc(d, t, TP), kS / TP, kB, kS, ya, dxa);
  b.run(gt.x_loc(d, t, TP), gt.dy_loc(d, t, TP), kS / TP, kB, kS, yb, dxb);
  EXPECT_EQ(moe::cached_tokens_per_local_expert(*a.cache), moe::cached_tokens_per_local_expert(*b.cache));
  // 1e-6 absolute for O(1) values (docs/moe.md §6.5); these tensors reach O(10), so the bound is
  // 1e-6·(1 + |want| + max|want|): one or two fp32 ulps at the tensor's scale.
  expect_close(yb, ya, 1e-6, 1e-6, "y");
  expect_close(dxb, dxa, 1e-6, 1e-6, "dx");
  ASSERT_EQ(a.dense.total(), b.dense.total());
  ASSERT_EQ(a.expert.total(), b.expert.total());
  for (ParamArena* pa : {&a.dense, &a.expert}) {
    ParamArena* pb = pa == &a.dense ? &b.dense : &b.expert;
    for (int i = 0; i < pa->size(); ++i)
      expect_close(pb->grads() + pb->offset(i), pa->grads() + pa->offset(i), shape_numel(pa->spec(i).shape), 1e-6,
                   1e-6, "grad " + pa->spec(i).name);
  }
}

void sharded_vs_unsharded(const Layout& l, const Variant& v, const std::string& dispatcher) {
  SCOPED_TRACE(l.str() + " " + v.name + " " + dispatcher);
  const ProcessGroups g = layout_groups(l);
  Config cfg = moe_config(experts_for(l));
  v.apply(cfg);
  cfg.moe.dispatcher = dispatcher;
  const int TP = g.tp->size(), DP = g.dp->size();
  const int t = g.tp->rank();
  const int64_t d = g.dp->rank();
  const int64_t H = cfg.model.hidden, N_loc = kS / TP * kB;
  const GlobalTokens gt(DP, kS, kB, H);

  MoEUnit dist(cfg, g);
  if (v.force_zero) force_routing(dist);
  std::vector<float> y, dx;
  dist.run(gt.x_loc(d, t, TP), gt.dy_loc(d, t, TP), kS / TP, kB, kS, y, dx);

  Config rcfg = cfg;
  if (cfg.moe.capacity_factor && TP > 1) rcfg.moe.capacity_partition = {TP, 1};
  MoEUnit ref(rcfg, ProcessGroups::single_process());
  if (v.force_zero) force_routing(ref);
  std::vector<float> yr, dxr, y_mine, dx_mine;
  for (int64_t dd = 0; dd < DP; ++dd) {
    ref.run(gt.x_of(dd), gt.dy_of(dd), kS, kB, kS, yr, dxr);
    if (dd == d) {
      y_mine.assign(yr.begin() + t * N_loc * H, yr.begin() + (t + 1) * N_loc * H);
      dx_mine.assign(dxr.begin() + t * N_loc * H, dxr.begin() + (t + 1) * N_loc * H);
    }
  }
  expect_close(y, y_mine, 1e-5, 0.0, "y (local rows)");
  expect_close(dx, dx_mine, 1e-5, 0.0, "dx (local rows)");

  for (ParamArena* ra : {&ref.dense, &ref.expert}) {
    const ParamArena& da = ra == &ref.dense ? dist.dense : dist.expert;
    const auto got = logical_grads(da, param_names(*ra));
    for (const auto& [name, grad] : got) expect_close(grad, ref_grad(*ra, name), 1e-5, 0.0, "grad " + name);
  }

  if (v.force_zero) {
    // Experts k.. receive no rows: their gradients are exactly zero, in the reference and on
    // every rank that holds one; EP ranks holding none of experts 0..k−1 hand zero rows on.
    const int k = cfg.moe.topk, E = cfg.moe.num_experts, nle = E / g.ep->size();
    const std::vector<int64_t> tple = moe::cached_tokens_per_local_expert(*dist.cache);
    for (int le = 0; le < nle; ++le) {
      const int e = g.ep->rank() * nle + le;
      if (e >= k) {
        EXPECT_EQ(tple[size_t(le)], 0) << "expert " << e;
      } else {
        EXPECT_GT(tple[size_t(le)], 0) << "expert " << e;
      }
    }
    for (int i = 0; i < dist.expert.size(); ++i) {
      const std::string& name = dist.expert.spec(i).name;
      const int e = std::stoi(name.substr(name.find("experts.") + 8));
      if (e < k) continue;
      const float* gr = dist.expert.grads() + dist.expert.offset(i);
      int nonzero = 0;
      for (int64_t j = 0; j < shape_numel(dist.expert.spec(i).shape); ++j) nonzero += gr[j] != 0.0f;
      EXPECT_EQ(nonzero, 0) << name << " must have an exactly zero gradient";
      const std::vector<float> rg = ref_grad(ref.expert, name);
      for (float x : rg) ASSERT_EQ(x, 0.0f) << "reference " << name;
    }
  }
}

}  // namespace

TEST(MoELayerParallel, AllGatherEqualsAlltoAll) {
  for (const Layout& l : fitting(kMoELayouts))
    for (const Variant& v : kVariants) allgather_equals_alltoall(l, v);
}

TEST(MoELayerParallel, ShardedVsUnshardedAlltoAll) {
  for (const Layout& l : fitting(kMoELayouts))
    for (const Variant& v : kVariants) sharded_vs_unsharded(l, v, "alltoall");
}

TEST(MoELayerParallel, ShardedVsUnshardedAllGather) {
  for (const Layout& l : fitting(kMoELayouts))
    for (const Variant& v : kVariants) sharded_vs_unsharded(l, v, "allgather");
}
