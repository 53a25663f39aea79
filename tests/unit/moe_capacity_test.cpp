// Capacity, dropping and padding (docs/moe.md §3): worked example §3.4 row by row, partition units.
#include <gtest/gtest.h>

#include <vector>

#include "moe/capacity.h"
#include "moe/router.h"

using namespace foldmoe;
using namespace foldmoe::moe;

namespace {

const std::vector<float> kLogits = {2, 1, 0, -1, 0.5f, 0.5f, 0, 0, -1, 0, 3, 1, 0, 2, 2, 0};

struct Result {
  std::vector<float> probs, fprobs;
  std::vector<uint8_t> map, fmap;
};

Result run(double cf, DropPolicy pol, bool pad) {
  RouterOptions o;
  o.E = 4, o.k = 2;
  Result r;
  r.probs.resize(16), r.fprobs.resize(16), r.map.resize(16), r.fmap.resize(16);
  std::vector<float> saved(16);
  route(o, kLogits.data(), 4, nullptr, r.probs.data(), r.map.data(), saved.data());
  std::vector<int32_t> scratch;
  apply_capacity(r.probs.data(), r.map.data(), 4, 4, 2, cf, pol, pad, CapacityUnits{}, r.fprobs.data(),
                 r.fmap.data(), scratch);
  return r;
}

// kept[n] = set of experts kept for token n (routed and in final_map).
std::vector<std::vector<int>> kept_sets(const Result& r) {
  std::vector<std::vector<int>> s(4);
  for (int n = 0; n < 4; ++n)
    for (int e = 0; e < 4; ++e)
      if (r.map[size_t(n * 4 + e)] && r.fmap[size_t(n * 4 + e)]) s[size_t(n)].push_back(e);
  return s;
}

std::vector<std::pair<int, int>> fillers(const Result& r) {
  std::vector<std::pair<int, int>> f;
  for (int n = 0; n < 4; ++n)
    for (int e = 0; e < 4; ++e)
      if (!r.map[size_t(n * 4 + e)] && r.fmap[size_t(n * 4 + e)]) f.push_back({n, e});
  return f;
}

std::vector<int> per_expert(const Result& r) {
  std::vector<int> c(4, 0);
  for (int n = 0; n < 4; ++n)
    for (int e = 0; e < 4; ++e) c[size_t(e)] += r.map[size_t(n * 4 + e)] && r.fmap[size_t(n * 4 + e)];
  return c;
}

using Sets = std::vector<std::vector<int>>;

}  // namespace

TEST(MoeCapacity, Formula) {
  EXPECT_EQ(expert_capacity(4, 2, 4, 1.0), 2);
  EXPECT_EQ(expert_capacity(4, 2, 4, 0.5), 1);
  EXPECT_EQ(expert_capacity(4, 2, 4, 3.0), 4);  // clamp to N
  EXPECT_EQ(expert_capacity(10, 2, 8, 0.6), 2);  // ceil(2.5·0.6 = 1.5)
}

TEST(MoeCapacity, WorkedExampleCF1Position) {
  const Result r = run(1.0, DropPolicy::Position, false);
  EXPECT_EQ(kept_sets(r), (Sets{{0, 1}, {0, 1}, {2, 3}, {2}}));
  EXPECT_EQ(per_expert(r), (std::vector<int>{2, 2, 2, 1}));
  const Result p = run(1.0, DropPolicy::Position, true);
  EXPECT_EQ(kept_sets(p), kept_sets(r));
  EXPECT_EQ(fillers(p), (std::vector<std::pair<int, int>>{{0, 3}}));
  EXPECT_EQ(p.fprobs[3], 0.0f);
}

TEST(MoeCapacity, WorkedExampleCF1Probs) {
  const Result r = run(1.0, DropPolicy::Probs, false);
  EXPECT_EQ(kept_sets(r), (Sets{{0}, {0, 1}, {2, 3}, {1, 2}}));
  EXPECT_EQ(per_expert(r), (std::vector<int>{2, 2, 2, 1}));
  const Result p = run(1.0, DropPolicy::Probs, true);
  EXPECT_EQ(kept_sets(p), kept_sets(r));
  EXPECT_EQ(fillers(p), (std::vector<std::pair<int, int>>{{0, 3}}));
  // Dropped pairs carry weight 0; kept pairs keep their router weight.
  EXPECT_EQ(r.fprobs[1], 0.0f);
  EXPECT_EQ(r.fprobs[4 + 1], r.probs[4 + 1]);
}

TEST(MoeCapacity, WorkedExampleCFHalfPosition) {
  const Result r = run(0.5, DropPolicy::Position, false);
  EXPECT_EQ(kept_sets(r), (Sets{{0, 1}, {}, {2, 3}, {}}));
  EXPECT_EQ(per_expert(r), (std::vector<int>{1, 1, 1, 1}));
  EXPECT_TRUE(fillers(run(0.5, DropPolicy::Position, true)).empty());
}

TEST(MoeCapacity, WorkedExampleCFHalfProbs) {
  const Result r = run(0.5, DropPolicy::Probs, false);
  EXPECT_EQ(kept_sets(r), (Sets{{0}, {1}, {2, 3}, {}}));
  EXPECT_EQ(per_expert(r), (std::vector<int>{1, 1, 1, 1}));
  EXPECT_TRUE(fillers(run(0.5, DropPolicy::Probs, true)).empty());
}

// Invariant 10: CF >= E/k gives C_eff = N, i.e. dropless, and pad mode holds exactly E·C_eff.
TEST(MoeCapacity, LargeFactorIsDropless) {
  for (auto pol : {DropPolicy::Probs, DropPolicy::Position}) {
    const Result r = run(2.0, pol, false);
    EXPECT_EQ(r.fmap, r.map);
    EXPECT_EQ(r.fprobs, r.probs);
    const Result p = run(0.7, pol, true);
    int total = 0;
    for (uint8_t v : p.fmap) total += v;
    EXPECT_EQ(total, 4 * expert_capacity(4, 2, 4, 0.7));
  }
}

TEST(MoeCapacity, PartitionUnitsZigZag) {
  // S = 8, B = 2, cp = 2, tp = 2: CP rank 0 holds chunks 0 and 3 = positions {0,1,6,7};
  // TP rank 0 of it: {0,1}, TP rank 1: {6,7}. CP rank 1: {2,3,4,5} -> {2,3} and {4,5}.
  const CapacityUnits u = capacity_partition_units(8, 2, 2, 2);
  ASSERT_EQ(u.offsets, (std::vector<int64_t>{0, 4, 8, 12, 16}));
  EXPECT_EQ(std::vector<int32_t>(u.rows.begin(), u.rows.begin() + 4), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(std::vector<int32_t>(u.rows.begin() + 4, u.rows.begin() + 8), (std::vector<int32_t>{12, 13, 14, 15}));
  EXPECT_EQ(std::vector<int32_t>(u.rows.begin() + 8, u.rows.begin() + 12), (std::vector<int32_t>{4, 5, 6, 7}));
  EXPECT_EQ(std::vector<int32_t>(u.rows.begin() + 12, u.rows.end()), (std::vector<int32_t>{8, 9, 10, 11}));
}

TEST(MoeCapacity, PartitionAppliesPerUnit) {
  // Two units (tp = 2, S = 4, B = 1): {t0, t1} and {t2, t3}; CF = 1 -> C_eff = 1 per unit.
  RouterOptions o;
  o.E = 4, o.k = 2;
  std::vector<float> probs(16), saved(16), fprobs(16);
  std::vector<uint8_t> map(16), fmap(16);
  route(o, kLogits.data(), 4, nullptr, probs.data(), map.data(), saved.data());
  const CapacityUnits u = capacity_partition_units(4, 1, 2, 1);
  std::vector<int32_t> scratch;
  apply_capacity(probs.data(), map.data(), 4, 4, 2, 1.0, DropPolicy::Position, false, u, fprobs.data(), fmap.data(),
                 scratch);
  // Unit 0: e0 keeps t0 (first), e1 keeps t0. Unit 1: e1 keeps t3, e2 keeps t2, e3 keeps t2.
  const std::vector<uint8_t> want = {1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0};
  EXPECT_EQ(fmap, want);
}
