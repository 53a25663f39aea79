// The planner's building blocks (docs/planner.md): which nodes a group spans, checked against the
// group lists of comm/topology for many layouts and every order string; the collective cost
// formulas at hand-worked values; the cluster file round trip and its errors; the memory parts
// adding up and shrinking as documented.
#include <gtest/gtest.h>

#include <array>
#include <set>
#include <string>

#include "comm/topology.h"
#include "core/check.h"
#include "plan/cluster.h"
#include "plan/collectives.h"
#include "plan/links.h"
#include "plan/memory_model.h"
#include "plan/model_source.h"
#include "plan/step_model.h"

using namespace foldmoe;
using namespace foldmoe::plan;

namespace {

// Nodes of the group holding rank 0, from the topology's explicit group lists.
std::pair<int, int> nodes_of(const RankGroups& groups, int per_node) {
  const std::vector<int>* g0 = nullptr;
  for (const auto& g : groups)
    for (int r : g)
      if (r == 0) g0 = &g;
  std::set<int> nodes;
  for (int r : *g0) nodes.insert(r / per_node);
  return {int(g0->size()), int(nodes.size())};
}

}  // namespace

TEST(PlanLinks, GroupSpanMatchesTopologyGroups) {
  const std::vector<std::array<int, 6>> layouts = {// world, tp, cp, pp, ep, etp
                                                   {128, 2, 1, 8, 8, 1}, {128, 2, 1, 8, 4, 2}, {128, 2, 1, 8, 8, 2},
                                                   {256, 8, 1, 8, 4, 8}, {64, 2, 2, 2, 8, 1},  {32, 4, 2, 1, 16, 2},
                                                   {16, 1, 4, 2, 2, 4},  {64, 1, 1, 4, 16, 1}};
  for (const std::string order : {"tp-cp-ep-dp-pp", "tp-pp-cp-ep-dp", "pp-tp-cp-ep-dp", "ep-dp-tp-cp-pp"})
    for (const auto& [W, tp, cp, pp, ep, etp] : layouts)
      for (int per_node : {4, 8}) {
        const LayoutSpec spec{.world = W, .tp = tp, .cp = cp, .pp = pp, .ep = ep, .etp = etp, .order = order};
        if (!layout_errors(spec).empty()) continue;
        const Topology topo(spec);
        PlanLayout l{.tp = tp, .cp = cp, .pp = pp, .ep = ep, .etp = etp, .order = order};
        l.dp = topo.sizes().dp, l.edp = topo.sizes().edp;
        const TopologyGroups& g = topo.groups();
        const std::vector<std::tuple<bool, std::vector<int>, const RankGroups*>> cases = {
            {false, {kTP}, &g.tp}, {false, {kCP}, &g.cp}, {false, {kDP, kCP}, &g.dp_cp}, {false, {kPP}, &g.pp},
            {true, {kTP}, &g.etp}, {true, {kEP}, &g.ep},  {true, {kDP}, &g.edp}};
        for (const auto& [expert, tokens, groups] : cases) {
          const GroupSpan s = group_span(l, W, per_node, expert, tokens);
          const auto [size, nodes] = nodes_of(*groups, per_node);
          EXPECT_EQ(s.size, size) << order;
          EXPECT_EQ(s.nodes, nodes) << order << " W" << W << " tp" << tp << " ep" << ep << " etp" << etp;
        }
      }
}

TEST(PlanCollectives, HandWorkedCosts) {
  Cluster c;
  c.intra_bw = 400e9, c.intra_latency = 2e-6, c.intra_efficiency = 0.5;
  c.inter_bw = 50e9, c.inter_latency = 10e-6, c.inter_efficiency = 0.8, c.alltoall_efficiency = 0.25;
  const GroupSpan node8{.size = 8, .nodes = 1, .ranks_per_node = 8};
  const GroupSpan two_nodes{.size = 8, .nodes = 2, .ranks_per_node = 4};
  // Ring inside a node: 7 hops of latency + 7/8 of 800 MB at 200 GB/s.
  EXPECT_NEAR(allgather_time(c, node8, 800e6), 7 * 2e-6 + 0.875 * 800e6 / 200e9, 1e-12);
  EXPECT_NEAR(allreduce_time(c, node8, 800e6), 2 * allgather_time(c, node8, 800e6), 1e-12);
  // An all-reduce slower than two ring passes (foldmoe's gather-and-sum on CPU): only its bandwidth part.
  Cluster slow = c;
  slow.allreduce_efficiency = 0.25;
  EXPECT_NEAR(allreduce_time(slow, node8, 800e6), 2 * (7 * 2e-6 + 0.875 * 800e6 / 50e9), 1e-12);
  // Across nodes the ring runs at the NIC: 40 GB/s.
  EXPECT_NEAR(reduce_scatter_time(c, two_nodes, 800e6), 7 * 10e-6 + 0.875 * 800e6 / 40e9, 1e-12);
  // All-to-all of 800 MB per rank: 3/8 to node peers at 400·0.5·0.25 = 50 GB/s, 4/8 over the NIC at
  // 40 GB/s, at the same time.
  EXPECT_NEAR(alltoall_time(c, two_nodes, 800e6), 7 * 10e-6 + std::max(300e6 / 50e9, 400e6 / 40e9), 1e-12);
  EXPECT_NEAR(alltoall_time(c, node8, 800e6), 7 * 2e-6 + 700e6 / 50e9, 1e-12);
  EXPECT_EQ(allgather_time(c, GroupSpan{}, 1e9), 0);
  EXPECT_NEAR(p2p_time(c, true, 1e6), 10e-6 + 1e6 / 40e9, 1e-15);
}

TEST(PlanCluster, PresetRoundTripsAndBadFilesAreRefused) {
  const Cluster a = load_cluster("preset:dgx-h100");
  EXPECT_EQ(a.devices_per_node, 8);
  EXPECT_DOUBLE_EQ(a.peak_flops, 989.5e12);
  EXPECT_NEAR(a.inter_bw, 50e9, 1);
  const Cluster b = cluster_from_toml(cluster_to_toml(a), "round trip");
  EXPECT_EQ(b.name, a.name);
  EXPECT_NEAR(b.gemm_efficiency, a.gemm_efficiency, 1e-9);
  EXPECT_NEAR(b.memory_bytes / a.memory_bytes, 1, 1e-6);
  EXPECT_NEAR(b.alltoall_efficiency, a.alltoall_efficiency, 1e-9);
  EXPECT_THROW(cluster_from_toml("[efficiency]\ngemm = 0\n", "x"), UserError);
  EXPECT_THROW(cluster_from_toml("[links]\nbogus = 1\n", "x"), UserError);
  EXPECT_THROW(cluster_from_toml("[cluster]\nbackend = \"tpu\"\n", "x"), UserError);
  EXPECT_THROW(load_cluster("preset:nope"), UserError);
  EXPECT_GT(load_cluster("preset:dgx-h200").memory_bytes, a.memory_bytes);
}

TEST(PlanMemory, PartsAddUpAndShardingShrinksThem) {
  const Config m = load_plan_model("preset:mixtral-8x22b");
  const Cluster c = load_cluster("preset:dgx-h100");
  PlanLayout l{.tp = 2, .cp = 1, .pp = 8, .vpp = 1, .ep = 8, .etp = 1};
  l.dp = 8, l.edp = 2;
  const MemoryEstimate e = estimate_memory(m, l, c, 4096, 32);
  double sum = 0;
  for (const auto& [_, v] : e.parts) sum += v;
  EXPECT_NEAR(sum, e.total, 1e-6 * e.total);
  // bf16 weights are half the fp32 gradients; ZeRO-1 off multiplies the optimizer state.
  EXPECT_NEAR(e.parts.at("gradients"), 2 * e.parts.at("weights"), 1e-6 * e.total);
  PlanLayout no_zero = l;
  no_zero.distributed_optimizer = false;
  EXPECT_GT(estimate_memory(m, no_zero, c, 4096, 32).parts.at("optimizer"), 1.9 * e.parts.at("optimizer"));
  // Recomputation keeps less; the activations of a layer halve with twice the TP.
  PlanLayout full = l;
  full.recompute = "full";
  EXPECT_LT(estimate_memory(m, full, c, 4096, 32).parts.at("activations"), 0.1 * e.parts.at("activations"));
  PlanLayout tp4 = l;
  tp4.tp = 4, tp4.dp = 4;
  EXPECT_NEAR(layer_activation_bytes_cuda(m, tp4, 4096) / layer_activation_bytes_cuda(m, l, 4096), 0.5, 0.15);
}

// 1F1B: the first micro-batch's forward and the last one's backward cross every stage once, the rest
// go at the slowest stage's pace, so the bubble is the other stages' time per micro-batch (the last
// stage, with the output layer, is the slowest), not pp−1 times the mean over all stages.
TEST(PlanStep, PipelineBubbleIsTheOtherStagesTime) {
  const Config m = load_plan_model("preset:mixtral-8x22b");
  const Cluster c = load_cluster("preset:dgx-h100");
  const Workload w{.gpus = 32, .global_batch = 16, .seq = 4096};
  const Prediction p = predict(m, w, PlanLayout{.tp = 8, .pp = 4, .ep = 1, .etp = 8}, c);
  const int M = 16, L = m.model.layers;
  const int last = p.layout.pipeline_layers.empty() ? L / 4 : p.layout.pipeline_layers.back();
  double per_layer = 0;  // every per-layer part of the slowest (last) stage
  for (const auto& [name, v] : p.time)
    if ((name.starts_with("compute.") && name != "compute.output_layer") ||
        (name.starts_with("comm.") && name != "comm.pp" && name != "comm.dp"))
      per_layer += v;
  const double t_layer = per_layer / (M * last), p2p = p.time.at("comm.pp") / M;
  EXPECT_GT(p.time.at("compute.output_layer"), 0);
  EXPECT_NEAR(p.time.at("bubble"), (L - last) * t_layer + 3 * p2p, 1e-9 * p.step_time_s);
}

TEST(PlanStep, TimePartsAddUpAndMfuFollowsFromTheStep) {
  const Config m = load_plan_model("preset:qwen2-57b-a14b");
  const Cluster c = load_cluster("preset:dgx-h100");
  const Workload w{.gpus = 64, .global_batch = 256, .seq = 4096};
  const Prediction p = predict(m, w, PlanLayout{.tp = 2, .pp = 4, .ep = 4, .etp = 1}, c);
  double sum = 0;
  for (const auto& [_, v] : p.time) sum += v;
  EXPECT_NEAR(sum, p.step_time_s, 1e-9 * p.step_time_s);
  EXPECT_NEAR(p.mfu, flops_per_token(m, 4096) * 256 * 4096 / (p.step_time_s * 64 * 989.5e12), 1e-12);
  // fp8 speeds the step up, but by less than the 2x of its peak.
  Workload f = w;
  f.precision = "fp8";
  const double speedup = p.step_time_s / predict(m, f, PlanLayout{.tp = 2, .pp = 4, .ep = 4, .etp = 1}, c).step_time_s;
  EXPECT_GT(speedup, 1.05);
  EXPECT_LT(speedup, 2.0);
}
