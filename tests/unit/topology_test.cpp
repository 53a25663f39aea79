// docs/topology.md: the rank generator (P1–P4 on random grids and all 120 order strings), the worked
// examples A–E reproduced exactly, the layout rules L3–L12, L14 (one violation each, own id) and
// the docs/topology.md §7 AlltoAll dispatcher metadata.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <set>
#include <string>

#include "comm/topology.h"
#include "core/check.h"
#include "config/config.h"
#include "moe/alltoall_metadata.h"

using namespace foldmoe;

namespace {

RankGroups singletons(int n) {
  RankGroups g;
  for (int r = 0; r < n; ++r) g.push_back({r});
  return g;
}

LayoutSpec layout(int world, int tp, int cp, int pp, int ep, int etp, std::string order = "tp-cp-ep-dp-pp") {
  LayoutSpec s;
  s.world = world, s.tp = tp, s.cp = cp, s.pp = pp, s.ep = ep, s.etp = etp, s.order = std::move(order);
  return s;
}

std::string error_of(const LayoutSpec& s, const Config* c = nullptr) {
  try {
    validate_layout(s, c);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string order_string(const std::array<int, 5>& o) {
  std::string s;
  for (int i = 0; i < 5; ++i) {
    if (i) s += '-';
    s += kOrderTokens[size_t(o[size_t(i)])];
  }
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Generator properties

TEST(Topology, GeneratorPropertiesAllOrders) {
  std::array<int, 5> perm = {0, 1, 2, 3, 4};
  std::mt19937 rng(7);
  std::uniform_int_distribution<int> size_dist(1, 3);
  int orders = 0;
  do {
    ++orders;
    std::array<int, 5> order_tokens{};
    ASSERT_EQ(parse_order(order_string(perm), order_tokens), "");
    ASSERT_EQ(order_tokens, perm);
    for (int trial = 0; trial < 3; ++trial) {
      std::array<int, 5> sizes{};
      for (int& x : sizes) x = size_dist(rng);
      const RankGrid grid(perm, sizes);
      const int W = grid.world();
      // Strides: stride of position i = product of sizes before it.
      for (int i = 0, st = 1; i < 5; ++i) {
        EXPECT_EQ(grid.stride(perm[size_t(i)]), st);
        st *= sizes[size_t(perm[size_t(i)])];
      }
      for (int mask = 0; mask < 32; ++mask) {
        std::vector<int> request;
        for (int t = 0; t < 5; ++t)
          if (mask & (1 << t)) request.push_back(t);
        const RankGroups groups = grid.groups(request);
        // P1: partition.
        std::vector<int> seen(static_cast<size_t>(W), 0);
        for (const auto& g : groups)
          for (int r : g) ++seen[size_t(r)];
        for (int r = 0; r < W; ++r) ASSERT_EQ(seen[size_t(r)], 1) << order_string(perm) << " mask " << mask;
        for (size_t g = 0; g < groups.size(); ++g) {
          // P3: strictly increasing members; groups ordered by smallest member.
          for (size_t m = 1; m < groups[g].size(); ++m) ASSERT_LT(groups[g][m - 1], groups[g][m]);
          if (g > 0) {
            ASSERT_LT(groups[g - 1][0], groups[g][0]);
          }
          // P2: member index = mixed-radix number of the masked coordinates, first masked
          // token (in order-string order) least significant.
          for (size_t m = 0; m < groups[g].size(); ++m) {
            const int r = groups[g][m];
            int idx = 0, radix = 1;
            for (int i = 0; i < 5; ++i) {
              const int t = perm[size_t(i)];
              if (!(mask & (1 << t))) continue;
              idx += grid.coordinate(r, t) * radix;
              radix *= sizes[size_t(t)];
            }
            ASSERT_EQ(idx, int(m));
          }
        }
      }
      // P4: coordinate along a token = rank in its single-token group.
      for (int t = 0; t < 5; ++t) {
        const RankGroups groups = grid.groups({t});
        for (int r = 0; r < W; ++r) EXPECT_EQ(Topology::locate(groups, r).second, grid.coordinate(r, t));
      }
    }
  } while (std::next_permutation(perm.begin(), perm.end()));
  EXPECT_EQ(orders, 120);
}

TEST(Topology, ClosedFormDefaultOrder) {
  // docs/topology.md §2.4 closed form on random layouts with the default order.
  std::mt19937 rng(3);
  for (int trial = 0; trial < 200; ++trial) {
    std::uniform_int_distribution<int> d(1, 3);
    const int tp = d(rng), cp = d(rng), pp = d(rng), dp = d(rng);
    const int W = tp * cp * pp * dp;
    const int Wp = W / pp;
    // ETP·EP must divide W' = W / pp: pick divisors.
    std::vector<int> divs;
    for (int x = 1; x <= Wp; ++x)
      if (Wp % x == 0) divs.push_back(x);
    const int etp = divs[size_t(rng() % divs.size())];
    std::vector<int> divs2;
    for (int x = 1; x <= Wp / etp; ++x)
      if ((Wp / etp) % x == 0) divs2.push_back(x);
    const int ep = divs2[size_t(rng() % divs2.size())];
    const Topology t(layout(W, tp, cp, pp, ep, etp));
    for (int r = 0; r < W; ++r) {
      const int q = r % Wp;
      const RankCoords c = t.coords(r);
      EXPECT_EQ(c.pp, r / Wp);
      EXPECT_EQ(c.tp, q % tp);
      EXPECT_EQ(c.cp, (q / tp) % cp);
      EXPECT_EQ(c.dp, q / (tp * cp));
      EXPECT_EQ(c.etp, q % etp);
      EXPECT_EQ(c.ep, (q / etp) % ep);
      EXPECT_EQ(c.edp, q / (etp * ep));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Worked examples (docs/topology.md §6)

TEST(Topology, ExampleA) {
  const Topology t(layout(8, 2, 2, 2, 4, 1));
  const TopologyGroups& g = t.groups();
  EXPECT_EQ(t.sizes().dp, 1);
  EXPECT_EQ(t.sizes().edp, 1);
  EXPECT_EQ(g.tp, (RankGroups{{0, 1}, {2, 3}, {4, 5}, {6, 7}}));
  EXPECT_EQ(g.cp, (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(g.dp, singletons(8));
  EXPECT_EQ(g.pp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(g.expert_pp, g.pp);
  EXPECT_EQ(g.dp_cp, (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(g.tp_cp, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.tp_pp, (RankGroups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  EXPECT_EQ(g.tp_dp_cp, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.etp, singletons(8));
  EXPECT_EQ(g.ep, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.edp, singletons(8));
  EXPECT_EQ(g.etp_ep, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.etp_ep_pp, (RankGroups{{0, 1, 2, 3, 4, 5, 6, 7}}));
  EXPECT_EQ(g.embedding, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(g.position_embedding, (RankGroups{{0}, {1}, {2}, {3}}));
  const std::vector<RankCoords> want = {
      {0, 0, 0, 0, 0, 0, 0}, {1, 0, 0, 0, 0, 1, 0}, {0, 1, 0, 0, 0, 2, 0}, {1, 1, 0, 0, 0, 3, 0},
      {0, 0, 0, 1, 0, 0, 0}, {1, 0, 0, 1, 0, 1, 0}, {0, 1, 0, 1, 0, 2, 0}, {1, 1, 0, 1, 0, 3, 0}};
  for (int r = 0; r < 8; ++r) EXPECT_EQ(t.coords(r), want[size_t(r)]) << "rank " << r;
  EXPECT_EQ(t.folding(), "onto TP×CP");
}

TEST(Topology, ExampleB) {
  const Topology t(layout(16, 2, 2, 2, 4, 1));
  const TopologyGroups& g = t.groups();
  EXPECT_EQ(g.tp, (RankGroups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(g.cp, (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}, {8, 10}, {9, 11}, {12, 14}, {13, 15}}));
  EXPECT_EQ(g.dp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
  EXPECT_EQ(g.pp, (RankGroups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
  EXPECT_EQ(g.expert_pp, g.pp);
  EXPECT_EQ(g.dp_cp, (RankGroups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(g.tp_cp, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}));
  EXPECT_EQ(g.tp_pp, (RankGroups{{0, 1, 8, 9}, {2, 3, 10, 11}, {4, 5, 12, 13}, {6, 7, 14, 15}}));
  EXPECT_EQ(g.tp_dp_cp, (RankGroups{{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}}));
  EXPECT_EQ(g.etp, singletons(16));
  EXPECT_EQ(g.ep, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}));
  EXPECT_EQ(g.edp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}, {8, 12}, {9, 13}, {10, 14}, {11, 15}}));
  EXPECT_EQ(g.etp_ep, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9, 10, 11}, {12, 13, 14, 15}}));
  EXPECT_EQ(g.etp_ep_pp, (RankGroups{{0, 1, 2, 3, 8, 9, 10, 11}, {4, 5, 6, 7, 12, 13, 14, 15}}));
  EXPECT_EQ(g.embedding, g.pp);
  EXPECT_EQ(g.position_embedding, (RankGroups{{0}, {1}, {2}, {3}, {4}, {5}, {6}, {7}}));
  for (int r = 0; r < 16; ++r)
    EXPECT_EQ(t.coords(r), (RankCoords{r % 2, (r / 2) % 2, (r / 4) % 2, r / 8, 0, r % 4, (r / 4) % 2})) << r;
}

TEST(Topology, ExampleC) {
  const Topology b(layout(16, 2, 2, 2, 4, 1));
  const Topology t(layout(16, 2, 2, 2, 4, 2));
  const TopologyGroups& g = t.groups();
  const TopologyGroups& gb = b.groups();
  // Attention groups identical to example B.
  EXPECT_EQ(g.tp, gb.tp);
  EXPECT_EQ(g.cp, gb.cp);
  EXPECT_EQ(g.dp, gb.dp);
  EXPECT_EQ(g.pp, gb.pp);
  EXPECT_EQ(g.dp_cp, gb.dp_cp);
  EXPECT_EQ(g.tp_cp, gb.tp_cp);
  EXPECT_EQ(g.tp_pp, gb.tp_pp);
  EXPECT_EQ(g.tp_dp_cp, gb.tp_dp_cp);
  EXPECT_EQ(g.embedding, gb.embedding);
  EXPECT_EQ(g.position_embedding, gb.position_embedding);
  EXPECT_EQ(g.etp, (RankGroups{{0, 1}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}));
  EXPECT_EQ(g.ep, (RankGroups{{0, 2, 4, 6}, {1, 3, 5, 7}, {8, 10, 12, 14}, {9, 11, 13, 15}}));
  EXPECT_EQ(g.edp, singletons(16));
  EXPECT_EQ(g.etp_ep, (RankGroups{{0, 1, 2, 3, 4, 5, 6, 7}, {8, 9, 10, 11, 12, 13, 14, 15}}));
  EXPECT_EQ(g.etp_ep_pp, (RankGroups{{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}}));
  EXPECT_EQ(g.expert_pp, (RankGroups{{0, 8}, {1, 9}, {2, 10}, {3, 11}, {4, 12}, {5, 13}, {6, 14}, {7, 15}}));
  for (int r = 0; r < 16; ++r) {
    const RankCoords c = t.coords(r);
    EXPECT_EQ(c.etp, r % 2);
    EXPECT_EQ(c.ep, (r / 2) % 4);
    EXPECT_EQ(c.edp, 0);
    EXPECT_EQ(c.pp, r / 8);
  }
}

TEST(Topology, ExampleD) {
  const Topology t(layout(8, 2, 1, 1, 8, 1));
  const TopologyGroups& g = t.groups();
  const RankGroups pairs = {{0, 1}, {2, 3}, {4, 5}, {6, 7}}, all = {{0, 1, 2, 3, 4, 5, 6, 7}};
  EXPECT_EQ(g.tp, pairs);
  for (const RankGroups* x : {&g.cp, &g.pp, &g.etp, &g.edp, &g.embedding, &g.position_embedding, &g.expert_pp})
    EXPECT_EQ(*x, singletons(8));
  EXPECT_EQ(g.dp, (RankGroups{{0, 2, 4, 6}, {1, 3, 5, 7}}));
  EXPECT_EQ(g.dp_cp, (RankGroups{{0, 2, 4, 6}, {1, 3, 5, 7}}));
  EXPECT_EQ(g.tp_cp, pairs);
  EXPECT_EQ(g.tp_pp, pairs);
  EXPECT_EQ(g.tp_dp_cp, all);
  EXPECT_EQ(g.ep, all);
  EXPECT_EQ(g.etp_ep, all);
  EXPECT_EQ(g.etp_ep_pp, all);
  for (int r = 0; r < 8; ++r) EXPECT_EQ(t.coords(r), (RankCoords{r % 2, 0, r / 2, 0, 0, r, 0})) << r;
  EXPECT_EQ(t.folding(), "spanning DP replicas");
}

TEST(Topology, ExampleE1) {
  const Topology t(layout(8, 2, 1, 2, 2, 1, "tp-cp-ep-pp-dp"));
  const TopologyGroups& g = t.groups();
  const RankGroups pairs = {{0, 1}, {2, 3}, {4, 5}, {6, 7}};
  EXPECT_EQ(g.tp, pairs);
  EXPECT_EQ(g.cp, singletons(8));
  EXPECT_EQ(g.etp, singletons(8));
  EXPECT_EQ(g.dp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(g.dp_cp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(g.pp, (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(g.expert_pp, g.pp);
  EXPECT_EQ(g.tp_cp, pairs);
  EXPECT_EQ(g.tp_pp, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.tp_dp_cp, (RankGroups{{0, 1, 4, 5}, {2, 3, 6, 7}}));
  EXPECT_EQ(g.ep, pairs);
  EXPECT_EQ(g.etp_ep, pairs);
  EXPECT_EQ(g.edp, (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
  EXPECT_EQ(g.etp_ep_pp, (RankGroups{{0, 1, 2, 3}, {4, 5, 6, 7}}));
  EXPECT_EQ(g.embedding, (RankGroups{{0, 2}, {1, 3}, {4, 6}, {5, 7}}));
  EXPECT_EQ(g.position_embedding, (RankGroups{{0}, {1}, {4}, {5}}));
}

TEST(Topology, ExampleE2RejectedWithL5) {
  const LayoutSpec s = layout(8, 2, 1, 2, 4, 1, "tp-cp-ep-pp-dp");
  EXPECT_EQ(error_of(s),
            "layout error L5: with order tp-cp-ep-pp-dp the pipeline groups of the two grids differ\n"
            "  (attention tp·cp = 2 ranks before pp, expert etp·ep = 4; equivalently edp=1 != dp=2).\n"
            "  fix: use order tp-cp-ep-dp-pp (pp last), or make etp·ep equal tp·cp.");
  EXPECT_THROW(Topology{s}, UserError);
  // The expert grid alone would give the pp groups of the spec's text.
  std::array<int, 5> order{};
  parse_order("tp-cp-ep-pp-dp", order);
  EXPECT_EQ(RankGrid(order, {1, 1, 4, 1, 2}).groups({kPP}), (RankGroups{{0, 4}, {1, 5}, {2, 6}, {3, 7}}));
}

// ---------------------------------------------------------------------------------------------
// Layout rules: each violated alone, with its own id

namespace {

// A model every layout below satisfies unless a test breaks one rule.
Config rule_model() {
  Config c;
  c.model.layers = 4;
  c.model.hidden = 64;
  c.model.heads = 4;
  c.model.kv_heads = 4;
  c.model.ffn = 128;
  c.moe.num_experts = 8;
  c.moe.topk = 2;
  c.moe.ffn_hidden_size = 64;
  c.train.seq_len = 32;
  c.train.micro_batches = 4;
  return c;
}

// Expects exactly one error, with id `id`, whose text contains every needle.
void expect_only(const LayoutSpec& s, const Config* c, const std::string& id, std::vector<std::string> needles) {
  const std::vector<std::string> errs = layout_errors(s, c);
  ASSERT_EQ(errs.size(), 1u) << (errs.empty() ? std::string("no error") : errs[0] + "\n" + errs.back());
  EXPECT_EQ(errs[0].rfind("layout error " + id + ": ", 0), 0u) << errs[0];
  EXPECT_NE(errs[0].find("\n  fix: "), std::string::npos) << errs[0];
  for (const std::string& n : needles) EXPECT_NE(errs[0].find(n), std::string::npos) << n << " in\n" << errs[0];
}

}  // namespace

TEST(TopologyRules, ValidBaselines) {
  const Config c = rule_model();
  EXPECT_TRUE(layout_errors(layout(8, 2, 2, 2, 4, 1), &c).empty());
  EXPECT_TRUE(layout_errors(layout(8, 2, 1, 1, 8, 1), &c).empty());
  EXPECT_EQ(error_of(layout(8, 2, 1, 2, 2, 1, "tp-cp-ep-pp-dp")), "");
}

TEST(TopologyRules, L3) {
  const LayoutSpec s = layout(12, 2, 2, 2, 1, 1);
  EXPECT_EQ(error_of(s), "layout error L3: world size 12 is not divisible by tp·cp·pp = 2·2·2 = 8.\n"
                         "  fix: use a world size that is a multiple of 8, or change tp/cp/pp (e.g. pp=3 gives 12).");
}

TEST(TopologyRules, L4) {
  const Config c = rule_model();
  expect_only(layout(8, 2, 1, 1, 8, 2), &c, "L4", {"world size 8", "etp·ep·pp = 2·8·1 = 16", "ep=4 gives 8"});
}

TEST(TopologyRules, L5) {
  expect_only(layout(8, 2, 1, 2, 4, 1, "tp-cp-ep-pp-dp"), nullptr, "L5", {"tp-cp-ep-dp-pp (pp last)", "etp·ep = 4"});
}

TEST(TopologyRules, L6) {
  const Config c = rule_model();
  expect_only(layout(6, 1, 1, 1, 3, 1), &c, "L6", {"[parallel] ep = 3 does not divide [moe] num_experts = 8", "e.g. ep = 1"});
}

TEST(TopologyRules, L7) {
  Config c = rule_model();
  c.parallel.sequence_parallel = false;
  expect_only(layout(2, 2, 1, 1, 1, 1), &c, "L7", {"tp = 2", "sequence_parallel"});
}

TEST(TopologyRules, L8) {
  Config c = rule_model();
  c.train.seq_len = 36;
  expect_only(layout(4, 1, 4, 1, 1, 1), &c, "L8", {"seq_len = 36", "2*cp = 8"});
}

TEST(TopologyRules, L9) {
  Config c = rule_model();
  c.train.seq_len = 36;  // 36 / 2 = 18, not divisible by tp = 4; 36 mod 4 = 0 (L8 holds)
  c.model.heads = 8;
  c.model.kv_heads = 4;
  expect_only(layout(8, 4, 2, 1, 1, 1), &c, "L9", {"36 / 2 = 18", "tp = 4"});
}

TEST(TopologyRules, L10) {
  Config c = rule_model();
  c.moe.ffn_hidden_size = 66;
  expect_only(layout(4, 1, 1, 1, 1, 4), &c, "L10", {"F_moe = 66", "etp = 4"});
}

TEST(TopologyRules, L11) {
  Config c = rule_model();
  c.model.heads = 8;  // A mod TP = 0 but G mod TP != 0 (G | A, so A mod TP != 0 implies G mod TP != 0)
  c.model.kv_heads = 2;
  expect_only(layout(4, 4, 1, 1, 1, 1), &c, "L11", {"kv_heads = 2", "tp = 4"});
}

TEST(TopologyRules, L12) {
  Config c = rule_model();
  c.model.layers = 6;
  expect_only(layout(4, 1, 1, 4, 1, 1), &c, "L12", {"layers = 6", "pp = 4", "pipeline_layers"});
  // An explicit uneven split makes the same layout valid; a wrong list is its own L12 error.
  c.parallel.pipeline_layers = {2, 2, 1, 1};
  EXPECT_TRUE(layout_errors(layout(4, 1, 1, 4, 1, 1), &c).empty());
  c.parallel.pipeline_layers = {2, 2, 2, 1};
  expect_only(layout(4, 1, 1, 4, 1, 1), &c, "L12", {"sums to 7", "layers = 6"});
}

TEST(TopologyRules, L13) {
  // Without [train] global_batch, GBS = micro_batch · micro_batches · DP: never an L13 error.
  Config c = rule_model();
  for (int world : {1, 2, 4, 8})
    for (const std::string& e : layout_errors(layout(world, 1, 1, 1, 1, 1), &c))
      EXPECT_EQ(e.find("L13"), std::string::npos);
  // global_batch 24 over dp = 4 ranks of micro_batch 4: 24 mod 16 != 0.
  c.train.global_batch = 24;
  c.train.micro_batch = 4;
  expect_only(layout(4, 1, 1, 1, 1, 1), &c, "L13", {"global_batch = 24", "micro_batch·dp = 4·4 = 16", "e.g. 16"});
  EXPECT_TRUE(layout_errors(layout(2, 1, 1, 1, 1, 1), &c).empty());  // 24 mod 8 = 0
}

// The layout rules are one copy: config validation (no world size) reports the same violation,
// with the same id and text, as the layout check of `foldmoe topology` / `foldmoe train`.
TEST(TopologyRules, ConfigValidationUsesTheSameRules) {
  Config c = rule_model();
  c.parallel.ep = 3;
  const std::vector<std::string> layout = layout_errors(LayoutSpec::from_config(c, 6), &c);
  ASSERT_EQ(layout.size(), 1u);
  const std::vector<std::string> config = layout_problems_without_world(c).messages();
  EXPECT_EQ(config, layout);
  // Rules that need the world size are not checked without it.
  c.parallel.ep = 1;
  c.parallel.tp = 3;
  c.parallel.etp = 1;
  c.model.heads = 6;
  c.model.kv_heads = 3;
  c.train.seq_len = 36;
  EXPECT_TRUE(layout_problems_without_world(c).empty());
  EXPECT_NE(error_of(LayoutSpec::from_config(c, 4), &c).find("layout error L3"), std::string::npos);
}

TEST(TopologyRules, L14) {
  Config c = rule_model();
  c.model.layers = 8;
  c.train.micro_batches = 3;
  LayoutSpec s = layout(2, 1, 1, 2, 1, 1);
  s.vpp = 2;
  expect_only(s, &c, "L14", {"micro_batches = 3", "pp = 2"});
}

TEST(TopologyRules, AllViolationsReportedTogether) {
  Config c = rule_model();
  c.model.layers = 3;
  const std::string e = error_of(layout(12, 2, 2, 2, 5, 1), &c);
  EXPECT_NE(e.find("layout errors:"), std::string::npos) << e;
  for (const char* id : {"L3", "L4", "L6", "L12"}) EXPECT_NE(e.find(std::string("layout error ") + id), std::string::npos) << id;
}

TEST(TopologyRules, L1AndL2) {
  EXPECT_NE(error_of(layout(8, 0, 1, 1, 1, 1)).find("layout error L1: [parallel] tp = 0"), std::string::npos);
  EXPECT_NE(error_of(layout(8, 1, 1, 1, 1, 1, "tp-cp-ep-dp")).find("layout error L2"), std::string::npos);
  EXPECT_NE(error_of(layout(8, 1, 1, 1, 1, 1, "tp-cp-ep-dp-xx")).find("unknown token \"xx\""), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// docs/topology.md §7: AlltoAll dispatcher metadata on 4 ranks (ETP2 × EP2, E = 4)

TEST(Topology, DispatcherMetadataExample) {
  const Topology t(layout(4, 1, 1, 1, 2, 2));
  EXPECT_EQ(t.groups().ep, (RankGroups{{0, 2}, {1, 3}}));
  EXPECT_EQ(t.groups().etp, (RankGroups{{0, 1}, {2, 3}}));
  // Counts of r0..r3; etp_ep member q = etp + 2·ep = the world rank here.
  EXPECT_EQ(t.groups().etp_ep, (RankGroups{{0, 1, 2, 3}}));
  const std::vector<std::vector<int64_t>> counts = {{3, 1, 2, 0}, {0, 2, 1, 1}, {1, 1, 0, 4}, {2, 0, 3, 1}};
  struct Want {
    std::vector<int64_t> in, out, out_tp, tple, ag, sorted;
    int64_t num_out;
  };
  const std::vector<Want> want = {
      {{4, 2}, {4, 2}, {6, 4}, {6, 4}, {3, 1, 1, 1, 0, 2, 2, 0}, {3, 1, 0, 2, 1, 1, 2, 0}, 6},
      {{2, 2}, {2, 2}, {6, 4}, {6, 4}, {3, 1, 1, 1, 0, 2, 2, 0}, {3, 1, 0, 2, 1, 1, 2, 0}, 4},
      {{2, 4}, {2, 4}, {6, 6}, {6, 6}, {2, 0, 0, 4, 1, 1, 3, 1}, {2, 0, 1, 3, 0, 4, 1, 1}, 6},
      {{2, 4}, {2, 4}, {6, 6}, {6, 6}, {2, 0, 0, 4, 1, 1, 3, 1}, {2, 0, 1, 3, 0, 4, 1, 1}, 6}};
  for (int r = 0; r < 4; ++r) {
    const RankCoords c = t.coords(r);
    const moe::AlltoAllMetadata m = moe::alltoall_metadata(counts, 2, 2, c.etp, c.ep);
    const Want& w = want[size_t(r)];
    EXPECT_EQ(m.input_splits, w.in) << r;
    EXPECT_EQ(m.output_splits, w.out) << r;
    EXPECT_EQ(m.output_splits_tp, w.out_tp) << r;
    EXPECT_EQ(m.tokens_per_local_expert, w.tple) << r;
    EXPECT_EQ(m.chunk_sizes, w.ag) << r;
    EXPECT_EQ(m.sorted_chunk_sizes, w.sorted) << r;
    EXPECT_EQ(m.num_out_tokens, w.num_out) << r;
    EXPECT_EQ(m.sort_perm, (std::vector<int>{0, 2, 4, 6, 1, 3, 5, 7})) << r;
    EXPECT_EQ(m.unsort_perm, (std::vector<int>{0, 4, 1, 5, 2, 6, 3, 7})) << r;
  }
}
