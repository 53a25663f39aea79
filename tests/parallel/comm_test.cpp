// Every Communicator collective of the MPI backend against hand-computed results (uneven and
// zero-length splits, determinism, traffic statistics), and sub-communicators built from the
// topology's groups. Runs on any world size; tests for one layout skip on other sizes.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "comm/topology.h"
#include "moe/alltoall_metadata.h"
#include "moe/dispatcher_alltoall.h"
#include "parallel_env.h"

using namespace foldmoe;
using foldmoe::partest::world;

namespace {

// Σ over members in member order, in fp32, as the backend promises.
template <typename T, typename Fn>
T fold_sum(int P, Fn&& value) {
  T acc = value(0);
  for (int r = 1; r < P; ++r) acc = T(acc + value(r));
  return acc;
}

}  // namespace

TEST(Comm, RankAndSize) {
  Communicator& w = world();
  EXPECT_GE(w.size(), 1);
  EXPECT_GE(w.rank(), 0);
  EXPECT_LT(w.rank(), w.size());
  EXPECT_TRUE(is_mpi_communicator(w));
}

TEST(Comm, AllReduceSmallIntegers) {
  // Hand-computed: ranks contribute r+1 and 10·r; sums are P(P+1)/2 and 5·P(P-1).
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  float f[2] = {float(r + 1), float(10 * r)};
  w.all_reduce(f, 2);
  EXPECT_EQ(f[0], float(P * (P + 1) / 2));
  EXPECT_EQ(f[1], float(5 * P * (P - 1)));
  double d[1] = {double(r) * 0.25};
  w.all_reduce(d, 1);
  EXPECT_EQ(d[0], 0.125 * P * (P - 1));
  float m[2] = {float(r), float(-r)};
  w.all_reduce(m, 2, ReduceOp::Max);
  EXPECT_EQ(m[0], float(P - 1));
  EXPECT_EQ(m[1], 0.0f);
  w.all_reduce(static_cast<float*>(nullptr), 0);  // zero-length is fine
}

TEST(Comm, AllReduceDeterministicMemberOrder) {
  // Cancellation-heavy values: the result depends on the summation order, and must equal the
  // member-order fp32 fold bit for bit, on every run.
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  const int64_t n = 1000;
  const auto value = [](int rank, int64_t i) {
    return (rank % 2 == 0 ? 1e7f : -1e7f) + float(rank) * 0.1f + float(i) * 1e-3f;
  };
  std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) a[size_t(i)] = b[size_t(i)] = value(r, i);
  w.all_reduce(a.data(), n);
  w.all_reduce(b.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    const float want = fold_sum<float>(P, [&](int q) { return value(q, i); });
    ASSERT_EQ(std::memcmp(&a[size_t(i)], &want, sizeof(float)), 0) << i << ": " << a[size_t(i)] << " vs " << want;
    ASSERT_EQ(std::memcmp(&a[size_t(i)], &b[size_t(i)], sizeof(float)), 0);
  }
}

TEST(Comm, AllGather) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  const int64_t n = 3;
  std::vector<float> send = {float(r * 100), float(r * 100 + 1), float(r * 100 + 2)}, recv(size_t(n * P), -1.f);
  w.all_gather(send.data(), recv.data(), n);
  for (int i = 0; i < P; ++i)
    for (int k = 0; k < n; ++k) EXPECT_EQ(recv[size_t(i * n + k)], float(i * 100 + k));
  // In place: my block already sits at rank()·n.
  std::vector<float> inplace(static_cast<size_t>(n * P), -1.f);
  for (int k = 0; k < n; ++k) inplace[size_t(r * n + k)] = float(r * 100 + k);
  w.all_gather(inplace.data() + r * n, inplace.data(), n);
  EXPECT_EQ(inplace, recv);
}

TEST(Comm, AllGatherVUnevenAndZero) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  std::vector<int64_t> counts(static_cast<size_t>(P));
  for (int i = 0; i < P; ++i) counts[size_t(i)] = i % 3;  // member 0 (and every third) sends nothing
  std::vector<float> send(static_cast<size_t>(counts[size_t(r)]));
  for (int64_t k = 0; k < counts[size_t(r)]; ++k) send[size_t(k)] = float(r * 100 + k);
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  std::vector<float> recv(static_cast<size_t>(total) + 1, -1.f);
  w.all_gather_v(send.data(), recv.data(), counts);
  int64_t o = 0;
  for (int i = 0; i < P; ++i)
    for (int64_t k = 0; k < counts[size_t(i)]; ++k) EXPECT_EQ(recv[size_t(o++)], float(i * 100 + k));
  EXPECT_EQ(recv[size_t(total)], -1.f);  // nothing written past the end
}

TEST(Comm, ReduceScatter) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  const int64_t n = 4;
  std::vector<float> send(static_cast<size_t>(n * P)), recv(static_cast<size_t>(n));
  for (int j = 0; j < P; ++j)
    for (int k = 0; k < n; ++k) send[size_t(j * n + k)] = float(r * 1000 + j * 10 + k);
  w.reduce_scatter(send.data(), recv.data(), n);
  // Σ_q (q·1000 + r·10 + k) = 1000·P(P-1)/2 + P·(10·r + k), exact in fp32 at these sizes.
  for (int k = 0; k < n; ++k) EXPECT_EQ(recv[size_t(k)], float(500 * P * (P - 1) + P * (10 * r + k)));
}

TEST(Comm, ReduceScatterVUnevenAndZeroDeterministic) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  std::vector<int64_t> counts(static_cast<size_t>(P));
  for (int j = 0; j < P; ++j) counts[size_t(j)] = (j * 2 + 1) % 4;  // 1,3,1,3,... ; P=2: 1,3
  if (P > 2) counts[2] = 0;                                           // a zero-length block
  const auto value = [](int rank, int j, int64_t k) { return (rank % 2 ? -3e6f : 3e6f) + float(rank + j) * 0.37f + float(k); };
  const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
  std::vector<float> send(static_cast<size_t>(total));
  int64_t o = 0;
  for (int j = 0; j < P; ++j)
    for (int64_t k = 0; k < counts[size_t(j)]; ++k) send[size_t(o++)] = value(r, j, k);
  std::vector<float> recv(static_cast<size_t>(counts[size_t(r)]) + 1, -1.f), again(recv);
  w.reduce_scatter_v(send.data(), recv.data(), counts);
  w.reduce_scatter_v(send.data(), again.data(), counts);
  for (int64_t k = 0; k < counts[size_t(r)]; ++k) {
    const float want = fold_sum<float>(P, [&](int q) { return value(q, r, k); });
    EXPECT_EQ(std::memcmp(&recv[size_t(k)], &want, sizeof(float)), 0) << k;
    EXPECT_EQ(std::memcmp(&recv[size_t(k)], &again[size_t(k)], sizeof(float)), 0) << k;
  }
  EXPECT_EQ(recv[size_t(counts[size_t(r)])], -1.f);
}

TEST(Comm, AllToAllVUnevenAndZero) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  // Rank a sends (a + 2·b) mod 3 floats a·1000 + b·100 + k to rank b.
  const auto cnt = [](int a, int b) { return int64_t((a + 2 * b) % 3); };
  std::vector<int64_t> sc(static_cast<size_t>(P)), rc(static_cast<size_t>(P));
  for (int j = 0; j < P; ++j) sc[size_t(j)] = cnt(r, j), rc[size_t(j)] = cnt(j, r);
  std::vector<float> send, recv(size_t(std::accumulate(rc.begin(), rc.end(), int64_t(0))), -1.f);
  for (int j = 0; j < P; ++j)
    for (int64_t k = 0; k < sc[size_t(j)]; ++k) send.push_back(float(r * 1000 + j * 100 + k));
  w.all_to_all_v(send.data(), sc, recv.data(), rc);
  int64_t o = 0;
  for (int i = 0; i < P; ++i)
    for (int64_t k = 0; k < rc[size_t(i)]; ++k) EXPECT_EQ(recv[size_t(o++)], float(i * 1000 + r * 100 + k));
}

TEST(Comm, BroadcastFromEveryRoot) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  for (int root = 0; root < P; ++root) {
    float v[3] = {float(r), float(r * 2), float(r * 3)};
    w.broadcast(v, 3, root);
    EXPECT_EQ(v[0], float(root));
    EXPECT_EQ(v[2], float(root * 3));
    char text[16] = {};
    if (r == root) std::snprintf(text, sizeof text, "root %d", root);
    w.broadcast_bytes(text, sizeof text, root);
    EXPECT_EQ(std::string(text), "root " + std::to_string(root));
  }
}

TEST(Comm, SendRecvRing) {
  Communicator& w = world();
  const int P = w.size(), r = w.rank();
  const int next = (r + 1) % P, prev = (r + P - 1) % P;
  float out[2] = {float(r), float(r + 0.5)}, in[2] = {-1, -1};
  if (r % 2 == 0) {
    w.send(out, 2, next, 7);
    w.recv(in, 2, prev, 7);
  } else {
    w.recv(in, 2, prev, 7);
    w.send(out, 2, next, 7);
  }
  EXPECT_EQ(in[0], float(prev));
  EXPECT_EQ(in[1], float(prev + 0.5));
  w.barrier();
}

TEST(Comm, TrafficStatistics) {
  Topology topo(LayoutSpec{.world = world().size()});
  ProcessGroups g = make_process_groups(topo, world());
  Communicator& w = *g.world;
  const int P = w.size();
  w.reset_stats();
  std::vector<float> x(10, 1.f), y(static_cast<size_t>(10 * P));
  w.all_gather(x.data(), y.data(), 10);
  w.all_reduce(x.data(), 10);
  w.barrier();
  const CommStats s = w.stats();
  EXPECT_EQ(s.bytes[CommStats::AllGather], 40 * (P - 1));
  EXPECT_EQ(s.bytes[CommStats::AllReduce], 40 * (P - 1));
  EXPECT_EQ(s.calls[CommStats::AllGather], 1);
  EXPECT_EQ(s.calls[CommStats::Barrier], 1);
  EXPECT_EQ(s.total_bytes(), 80 * (P - 1));
  EXPECT_GE(s.seconds, 0.0);
  EXPECT_EQ(g.comm_stats().total_bytes(), 80 * (P - 1));
  w.reset_stats();
  EXPECT_EQ(w.stats().total_bytes(), 0);
}

// ---------------------------------------------------------------------------------------------
// Sub-communicators from topology groups

namespace {

// Every group communicator of this rank matches its rank list: size, rank = member index, and an
// all-gather of world ranks returns the list in member order.
void check_groups(const Topology& topo, const ProcessGroups& g) {
  const int me = world().rank();
  const TopologyGroups& t = topo.groups();
  EXPECT_EQ(g.coords, topo.coords(me));
  EXPECT_EQ(g.sizes, topo.sizes());
  const std::vector<std::pair<const char*, std::pair<const RankGroups*, Communicator*>>> all = {
      {"tp", {&t.tp, g.tp.get()}},         {"cp", {&t.cp, g.cp.get()}},           {"dp", {&t.dp, g.dp.get()}},
      {"pp", {&t.pp, g.pp.get()}},         {"dp_cp", {&t.dp_cp, g.dp_cp.get()}},  {"tp_cp", {&t.tp_cp, g.tp_cp.get()}},
      {"tp_pp", {&t.tp_pp, g.tp_pp.get()}}, {"tp_dp_cp", {&t.tp_dp_cp, g.tp_dp_cp.get()}},
      {"etp", {&t.etp, g.etp.get()}},      {"ep", {&t.ep, g.ep.get()}},           {"edp", {&t.edp, g.edp.get()}},
      {"etp_ep", {&t.etp_ep, g.etp_ep.get()}}, {"etp_ep_pp", {&t.etp_ep_pp, g.etp_ep_pp.get()}},
      {"embedding", {&t.embedding, g.embedding.get()}}};
  for (const auto& [name, pr] : all) {
    const auto [gi, m] = Topology::locate(*pr.first, me);
    Communicator* c = pr.second;
    if (gi < 0) {
      EXPECT_EQ(c, nullptr) << name;
      continue;
    }
    ASSERT_NE(c, nullptr) << name;
    const std::vector<int>& members = (*pr.first)[size_t(gi)];
    EXPECT_EQ(c->size(), int(members.size())) << name;
    EXPECT_EQ(c->rank(), m) << name;
    EXPECT_EQ(c->name(), name);
    const float mine = float(me);
    std::vector<float> got(members.size());
    c->all_gather(&mine, got.data(), 1);
    for (size_t i = 0; i < members.size(); ++i) EXPECT_EQ(got[i], float(members[i])) << name << " member " << i;
  }
}

}  // namespace

TEST(Groups, FoldedLayoutAnyWorld) {
  const int W = world().size();
  LayoutSpec s{.world = W, .tp = W % 2 == 0 ? 2 : 1, .ep = W, .etp = 1};  // EP spans DP replicas
  const Topology topo(s);
  check_groups(topo, make_process_groups(topo, world()));
}

TEST(Groups, PipelineWithMiddleStages) {
  const int W = world().size();
  if (W % 4 != 0) GTEST_SKIP() << "needs a multiple of 4 ranks";
  const Topology topo(LayoutSpec{.world = W, .pp = 4, .ep = W / 4, .etp = 1});
  const ProcessGroups g = make_process_groups(topo, world());
  check_groups(topo, g);  // middle stages get no embedding group
  EXPECT_EQ(g.embedding == nullptr, g.coords.pp == 1 || g.coords.pp == 2);
}

TEST(Groups, ExampleA) {
  if (world().size() != 8) GTEST_SKIP() << "example A needs 8 ranks";
  const Topology topo(LayoutSpec{.world = 8, .tp = 2, .cp = 2, .pp = 2, .ep = 4, .etp = 1});
  const ProcessGroups g = make_process_groups(topo, world());
  check_groups(topo, g);
  // Dense grads of stage 1 reduce over {4,6} and {5,7}: sum of world ranks in my dp_cp group.
  float v = float(world().rank());
  g.dp_cp->all_reduce(&v, 1);
  const int r = world().rank();
  EXPECT_EQ(v, float(r < 4 ? (r % 2 == 0 ? 2 : 4) : (r % 2 == 0 ? 10 : 12)));
}

TEST(Groups, OrderWithPipelineNotLast) {
  if (world().size() != 8) GTEST_SKIP() << "example E1 needs 8 ranks";
  const Topology topo(LayoutSpec{.world = 8, .tp = 2, .pp = 2, .ep = 2, .etp = 1, .order = "tp-cp-ep-pp-dp"});
  check_groups(topo, make_process_groups(topo, world()));
}

TEST(Groups, DispatcherMetadataExampleOnFourRanks) {
  // docs/topology.md §7, computed by the AlltoAll dispatcher itself over the real etp_ep group.
  if (world().size() != 4) GTEST_SKIP() << "docs/topology.md §7 needs 4 ranks";
  const Topology topo(LayoutSpec{.world = 4, .ep = 2, .etp = 2});
  const ProcessGroups g = make_process_groups(topo, world());
  check_groups(topo, g);
  const std::vector<std::vector<int64_t>> counts = {{3, 1, 2, 0}, {0, 2, 1, 1}, {1, 1, 0, 4}, {2, 0, 3, 1}};
  const int r = world().rank();
  const std::vector<int64_t>& c = counts[size_t(r)];
  const int E = 4;
  const int64_t N = *std::max_element(c.begin(), c.end()), H = 1;
  // Token n goes to expert e iff n < c[e].
  std::vector<uint8_t> map(static_cast<size_t>(N * E));
  std::vector<float> probs(static_cast<size_t>(N * E), 0.5f), x(static_cast<size_t>(N * H), 1.f);
  for (int64_t n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) map[size_t(n * E + e)] = n < c[size_t(e)] ? 1 : 0;
  moe::AlltoAllDispatcher d(g, E);
  moe::DispatchState st;
  d.dispatch_preprocess(x.data(), map.data(), probs.data(), N, H, /*pad=*/false, st);
  const moe::AlltoAllMetadata want = moe::alltoall_metadata(counts, 2, 2, g.coords.etp, g.coords.ep);
  EXPECT_EQ(st.input_splits, want.input_splits);
  EXPECT_EQ(st.output_splits, want.output_splits);
  EXPECT_EQ(st.output_splits_tp, want.output_splits_tp);
  EXPECT_EQ(st.tokens_per_local_expert, want.tokens_per_local_expert);
  EXPECT_EQ(st.chunk_sizes, want.chunk_sizes);
  EXPECT_EQ(st.num_out, want.num_out_tokens);
  // And the literal values of the spec's table.
  const std::vector<std::vector<int64_t>> ag = {{3, 1, 1, 1, 0, 2, 2, 0}, {3, 1, 1, 1, 0, 2, 2, 0},
                                                {2, 0, 0, 4, 1, 1, 3, 1}, {2, 0, 0, 4, 1, 1, 3, 1}};
  const std::vector<std::vector<int64_t>> in = {{4, 2}, {2, 2}, {2, 4}, {2, 4}};
  const std::vector<std::vector<int64_t>> tple = {{6, 4}, {6, 4}, {6, 6}, {6, 6}};
  EXPECT_EQ(st.chunk_sizes, ag[size_t(r)]);
  EXPECT_EQ(st.input_splits, in[size_t(r)]);
  EXPECT_EQ(st.output_splits, in[size_t(r)]);
  EXPECT_EQ(st.tokens_per_local_expert, tple[size_t(r)]);
  EXPECT_EQ(st.num_out, (std::vector<int64_t>{6, 4, 6, 6})[size_t(r)]);
}

// Self-check of the harness: with FOLDMOE_PARTEST_INJECT_FAILURE=1 rank 1 (only) fails, and the
// whole mpirun must exit non-zero. Passes (does nothing) otherwise.
TEST(Harness, InjectedFailureOnOneRank) {
  const char* inject = std::getenv("FOLDMOE_PARTEST_INJECT_FAILURE");
  if (inject && std::string(inject) == "1" && world().rank() == std::min(1, world().size() - 1))
    ADD_FAILURE() << "injected failure";
}
