// Dispatcher round trip × ETP (docs/moe.md §12 item 1) under mpirun: the TokenDispatcher phases are
// driven directly with identity experts (row ↦ row·p) and final_probs = 1/k on every routed pair
// (dropless). Then y = ETP·x, dx = ETP·g and dprobs[n, e] = ETP·⟨g_n, x_n⟩ on routed pairs (0
// elsewhere), for both dispatchers and every (TP, EP, ETP) layout that fits the world size,
// TP ≠ ETP included; also with routing forced so that only EP rank 0's experts receive tokens
// (the other EP ranks and most experts get zero rows).
#include <gtest/gtest.h>

#include <numeric>
#include <vector>

#include "moe/dispatcher.h"
#include "partest_util.h"

using namespace foldmoe;
using namespace foldmoe::partest;

namespace {

const std::vector<Layout> kRoundTripLayouts = {
    {1, 1, 1}, {1, 2, 1}, {2, 1, 2}, {1, 1, 2}, {2, 2, 1}, {1, 4, 1}, {1, 1, 4}, {4, 1, 4}, {2, 2, 2},
    {2, 4, 1}, {4, 4, 1}, {1, 2, 2}, {4, 2, 1}, {2, 1, 4}, {1, 3, 1}, {1, 1, 3}, {3, 3, 1}, {3, 1, 3},
    {2, 8, 1}, {2, 4, 2}, {1, 8, 1}, {8, 2, 4}};

struct RoundTripCase {
  int E = 24, k = 3;
  int64_t N = 10, H = 6;
  bool only_ep0 = false;  // every token routed to experts of EP rank 0 only
};

void round_trip(const Layout& l, const std::string& kind, const RoundTripCase& rc) {
  SCOPED_TRACE(l.str() + " " + kind + (rc.only_ep0 ? " only-ep0" : ""));
  const ProcessGroups g = layout_groups(l);
  const int E = rc.E, k = rc.k;
  const int64_t N = rc.N, H = rc.H;
  const int me = world().rank();
  const int ETP = g.etp->size();
  // Routing: k distinct experts per token from a per-rank random draw (or among EP rank 0's).
  const int choices = rc.only_ep0 ? E / g.ep->size() : E;
  ASSERT_GE(choices, k);
  std::vector<uint8_t> map(static_cast<size_t>(N * E), 0);
  std::vector<float> probs(static_cast<size_t>(N * E), 0.0f);
  const CounterRng rng(uint64_t(1000 + me), "rt-route");
  for (int64_t n = 0; n < N; ++n) {
    std::vector<int> perm(static_cast<size_t>(choices));
    std::iota(perm.begin(), perm.end(), 0);
    for (int i = choices - 1; i > 0; --i)
      std::swap(perm[size_t(i)], perm[size_t(rng.bits(uint64_t(n * 64 + i))[0] % uint32_t(i + 1))]);
    for (int j = 0; j < k; ++j) {
      map[size_t(n * E + perm[size_t(j)])] = 1;
      probs[size_t(n * E + perm[size_t(j)])] = 1.0f / float(k);
    }
  }
  const std::vector<float> x = randn(N * H, uint64_t(me + 1), "rt-x");
  const std::vector<float> gy = randn(N * H, uint64_t(me + 1), "rt-g");

  auto D = moe::make_dispatcher(kind, g, E);
  moe::DispatchState st;
  D->dispatch_preprocess(x.data(), map.data(), probs.data(), N, H, /*pad=*/false, st);
  D->dispatch_exchange(st);
  D->dispatch_postprocess(st);
  const int64_t R = std::accumulate(st.tokens_per_local_expert.begin(), st.tokens_per_local_expert.end(), int64_t(0));
  ASSERT_EQ(int64_t(st.tokens_per_local_expert.size()), E / g.ep->size());
  // Identity experts: out = row·p.
  std::vector<float> out(static_cast<size_t>(R * H));
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < H; ++h) out[size_t(r * H + h)] = st.rows[r * H + h] * st.rows_p[r];
  // Each routed pair is handed to every ETP shard of its expert.
  double rows_total = double(R), routed_total = double(N * k);
  g.etp_ep->all_reduce(&rows_total, 1);
  g.etp_ep->all_reduce(&routed_total, 1);
  EXPECT_EQ(rows_total, routed_total * ETP) << "each routed pair is seen by the ETP shards of its expert";
  if (rc.only_ep0 && g.ep->rank() != 0) {
    EXPECT_EQ(R, 0) << "EP rank " << g.ep->rank() << " must receive nothing";
  }

  std::vector<float> y(static_cast<size_t>(N * H), -7.0f);
  D->combine_preprocess(st, out.data());
  D->combine_exchange(st);
  D->combine_postprocess(st, y.data());
  std::vector<float> want(static_cast<size_t>(N * H));
  for (size_t i = 0; i < want.size(); ++i) want[i] = float(ETP) * x[i];
  expect_close(y, want, 1e-6, 1e-7, "y = ETP·x");

  // Backward.
  D->combine_backward(st, gy.data());
  std::vector<float> d_rows(static_cast<size_t>(R * H)), d_p(static_cast<size_t>(R));
  for (int64_t r = 0; r < R; ++r) {
    double dp = 0;
    for (int64_t h = 0; h < H; ++h) {
      const float dout = st.d_rows[r * H + h];
      d_rows[size_t(r * H + h)] = dout * st.rows_p[r];
      dp += double(dout) * st.rows[r * H + h];
    }
    d_p[size_t(r)] = float(dp);
  }
  std::vector<float> dx(static_cast<size_t>(N * H), -7.0f), dprobs(static_cast<size_t>(N * E), -7.0f);
  D->dispatch_backward(st, d_rows.data(), d_p.data(), dx.data(), dprobs.data());
  for (size_t i = 0; i < want.size(); ++i) want[i] = float(ETP) * gy[i];
  expect_close(dx, want, 1e-6, 1e-7, "dx = ETP·g");
  std::vector<float> want_p(static_cast<size_t>(N * E), 0.0f);
  for (int64_t n = 0; n < N; ++n) {
    double dot = 0;
    for (int64_t h = 0; h < H; ++h) dot += double(gy[size_t(n * H + h)]) * x[size_t(n * H + h)];
    for (int e = 0; e < E; ++e)
      if (map[size_t(n * E + e)]) want_p[size_t(n * E + e)] = float(ETP * dot);
  }
  expect_close(dprobs, want_p, 1e-5, 1e-6, "dprobs = ETP·<g,x> on routed pairs, 0 elsewhere");
}

}  // namespace

TEST(DispatcherRoundTrip, IdentityExpertsTimesEtp) {
  for (const Layout& l : fitting(kRoundTripLayouts))
    for (const char* kind : {"alltoall", "allgather"}) round_trip(l, kind, {});
}

TEST(DispatcherRoundTrip, OnlyEpRankZeroReceives) {
  for (const Layout& l : fitting(kRoundTripLayouts)) {
    if (l.ep == 1) continue;  // the EP = 1 layouts run in IdentityExpertsTimesEtp
    for (const char* kind : {"alltoall", "allgather"}) round_trip(l, kind, {.only_ep0 = true});
  }
}

TEST(DispatcherRoundTrip, ManyTokensFewExperts) {
  // Dense routing: E = 8, k = 4, N = 33 (odd), H = 5.
  for (const Layout& l : fitting(kRoundTripLayouts)) {
    if (8 % l.ep != 0) continue;
    for (const char* kind : {"alltoall", "allgather"}) round_trip(l, kind, {.E = 8, .k = 4, .N = 33, .H = 5});
  }
}
