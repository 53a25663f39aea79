// Ring attention under mpirun (docs/dense-parallel.md §4.3, §4.4, §12): forward output and lse, and the
// backward dQ, dK, dV of every rank's zig-zag chunks and local heads against single-rank causal
// attention on the whole sequence, for CP ∈ {2, 4} (3, 8 on 3 and 8 ranks) with GQA, with and without TP (heads split
// first), DP = world/(TP·CP) replicas on different data. Also checks the zig-zag data split.
#include <gtest/gtest.h>

#include <vector>

#include "comm/topology.h"
#include "model/batch.h"
#include "ops/attention.h"
#include "parallel/ring_attention.h"
#include "partest_util.h"

using namespace foldmoe;
using namespace foldmoe::partest;

namespace {

struct CpLayout {
  int tp, cp;
};

std::vector<CpLayout> cp_layouts() {
  std::vector<CpLayout> out;
  for (CpLayout l : {CpLayout{1, 2}, CpLayout{1, 4}, CpLayout{2, 2}, CpLayout{2, 4}, CpLayout{1, 3}, CpLayout{1, 8}})
    if (world().size() % (l.tp * l.cp) == 0) out.push_back(l);
  EXPECT_FALSE(out.empty()) << "no CP layout fits world size " << world().size();
  return out;
}

// Rows of this CP rank (zig-zag chunks) and heads [h0, h0+nh) of a full [S, B, X, D] tensor.
std::vector<float> local_rows(const std::vector<float>& full, int64_t S, int64_t B, int64_t X, int64_t D, int cp,
                              int r, int64_t h0, int64_t nh) {
  const int64_t c = S / (2 * cp);
  std::vector<float> out;
  for (int64_t s = 0; s < 2 * c; ++s) {
    const int64_t src = s < c ? r * c + s : (2 * cp - 1 - r) * c + (s - c);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = h0; h < h0 + nh; ++h)
        for (int64_t d = 0; d < D; ++d) out.push_back(full[size_t(((src * B + b) * X + h) * D + d)]);
  }
  return out;
}
// lse [B, A, S] → [B, nh, S_cp].
std::vector<float> local_lse(const std::vector<float>& full, int64_t S, int64_t B, int64_t A, int cp, int r,
                             int64_t h0, int64_t nh) {
  const int64_t c = S / (2 * cp);
  std::vector<float> out;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = h0; h < h0 + nh; ++h)
      for (int64_t s = 0; s < 2 * c; ++s) {
        const int64_t src = s < c ? r * c + s : (2 * cp - 1 - r) * c + (s - c);
        out.push_back(full[size_t((b * A + h) * S + src)]);
      }
  return out;
}

// The same group without non-blocking point-to-point: ring attention then shifts K/V with
// blocking send/recv instead of prefetching the next block (its fallback path).
class BlockingOnly final : public Communicator {
 public:
  explicit BlockingOnly(Communicator& c) : c_(c) {}
  int rank() const override { return c_.rank(); }
  int size() const override { return c_.size(); }
  std::string name() const override { return c_.name() + "-blocking"; }
  void all_reduce(float* d, int64_t n, ReduceOp op) override { c_.all_reduce(d, n, op); }
  void all_reduce(double* d, int64_t n, ReduceOp op) override { c_.all_reduce(d, n, op); }
  void all_gather(const float* s, float* r, int64_t n) override { c_.all_gather(s, r, n); }
  void all_gather_v(const float* s, float* r, std::span<const int64_t> c) override { c_.all_gather_v(s, r, c); }
  void reduce_scatter(const float* s, float* r, int64_t n) override { c_.reduce_scatter(s, r, n); }
  void reduce_scatter_v(const float* s, float* r, std::span<const int64_t> c) override { c_.reduce_scatter_v(s, r, c); }
  void all_to_all_v(const float* s, std::span<const int64_t> sc, float* r, std::span<const int64_t> rc) override {
    c_.all_to_all_v(s, sc, r, rc);
  }
  void broadcast(float* d, int64_t n, int root) override { c_.broadcast(d, n, root); }
  void broadcast_bytes(void* d, int64_t n, int root) override { c_.broadcast_bytes(d, n, root); }
  void send(const float* d, int64_t n, int peer, int tag) override { c_.send(d, n, peer, tag); }
  void recv(float* d, int64_t n, int peer, int tag) override { c_.recv(d, n, peer, tag); }
  void barrier() override { c_.barrier(); }

 private:
  Communicator& c_;
};

}  // namespace

TEST(RingAttention, ForwardBackwardVsSingleRank) {
  // S = 96 gives chunks of 24, 16, 12, 6 rows (CP 2, 3, 4, 8); CP 2's local 48 rows and the full
  // 96 cross the 64-row tiles of the kernels.
  for (const CpLayout& l : cp_layouts()) {
    for (auto [A, G] : {std::pair<int64_t, int64_t>{4, 2}, {4, 4}, {8, 2}}) {
      SCOPED_TRACE("TP" + std::to_string(l.tp) + "_CP" + std::to_string(l.cp) + " A" + std::to_string(A) + " G" +
                   std::to_string(G));
      const Topology topo(LayoutSpec{.world = world().size(), .tp = l.tp, .cp = l.cp});
      const ProcessGroups g = make_process_groups(topo, world());
      const int64_t S = 96, B = 2, D = 8, TP = l.tp, t = g.tp->rank(), r = g.cp->rank();
      const uint64_t seed = 31 + 7 * uint64_t(g.dp->rank());
      const std::vector<float> q = randn(S * B * A * D, seed, "q"), k = randn(S * B * G * D, seed, "k"),
                               v = randn(S * B * G * D, seed, "v"), dout = randn(S * B * A * D, seed, "do");
      std::vector<float> o(q.size()), lse(size_t(B * A * S)), dq(q.size()), dk(k.size()), dv(v.size());
      const ops::AttentionShape full{S, B, A, G, D};
      ops::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), full);
      ops::attention_backward(q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), dq.data(), dk.data(),
                              dv.data(), full);

      const int64_t Al = A / TP, Gl = G / TP, h0 = t * Al, g0 = t * Gl, Scp = S / l.cp;
      const std::vector<float> ql = local_rows(q, S, B, A, D, l.cp, int(r), h0, Al),
                               kl = local_rows(k, S, B, G, D, l.cp, int(r), g0, Gl),
                               vl = local_rows(v, S, B, G, D, l.cp, int(r), g0, Gl),
                               dol = local_rows(dout, S, B, A, D, l.cp, int(r), h0, Al);
      std::vector<float> ol(ql.size()), lsel(size_t(B * Al * Scp)), dql(ql.size()), dkl(kl.size()), dvl(vl.size());
      const ops::AttentionShape loc{Scp, B, Al, Gl, D};
      RingAttentionWorkspace ws;
      ring_attention_forward(*g.cp, ql.data(), kl.data(), vl.data(), ol.data(), lsel.data(), loc, ws);
      ring_attention_backward(*g.cp, ql.data(), kl.data(), vl.data(), ol.data(), lsel.data(), dol.data(), dql.data(),
                              dkl.data(), dvl.data(), loc, ws);
      expect_close(ol, local_rows(o, S, B, A, D, l.cp, int(r), h0, Al), 1e-5, 1e-6, "o");
      expect_close(lsel, local_lse(lse, S, B, A, l.cp, int(r), h0, Al), 1e-5, 1e-6, "lse");
      expect_close(dql, local_rows(dq, S, B, A, D, l.cp, int(r), h0, Al), 1e-4, 1e-6, "dq");
      expect_close(dkl, local_rows(dk, S, B, G, D, l.cp, int(r), g0, Gl), 1e-4, 1e-6, "dk");
      expect_close(dvl, local_rows(dv, S, B, G, D, l.cp, int(r), g0, Gl), 1e-4, 1e-6, "dv");
      // all_gather variant (docs/dense-parallel.md §4.5): the same steps on gathered K/V; forward bit-equal to
      // p2p, dK/dV summed by a reduce-scatter (fp32 round-off).
      std::vector<float> o2(ol.size()), lse2(lsel.size()), dq2(dql.size()), dk2(dkl.size()), dv2(dvl.size());
      RingAttentionWorkspace ws2;
      ring_attention_forward(*g.cp, ql.data(), kl.data(), vl.data(), o2.data(), lse2.data(), loc, ws2,
                             CpCommType::AllGather);
      ring_attention_backward(*g.cp, ql.data(), kl.data(), vl.data(), o2.data(), lse2.data(), dol.data(), dq2.data(),
                              dk2.data(), dv2.data(), loc, ws2, CpCommType::AllGather);
      EXPECT_EQ(o2, ol);
      EXPECT_EQ(lse2, lsel);
      EXPECT_EQ(dq2, dql);  // dQ accumulates locally in the same order
      expect_close(dk2, dkl, 1e-5, 1e-6, "dk all_gather vs p2p");
      expect_close(dv2, dvl, 1e-5, 1e-6, "dv all_gather vs p2p");
      // Blocking ring shifts (no K/V prefetch): the same steps in the same order, bit-equal.
      BlockingOnly blocking(*g.cp);
      std::vector<float> o3(ol.size()), lse3(lsel.size()), dq3(dql.size()), dk3(dkl.size()), dv3(dvl.size());
      RingAttentionWorkspace ws3;
      ring_attention_forward(blocking, ql.data(), kl.data(), vl.data(), o3.data(), lse3.data(), loc, ws3);
      ring_attention_backward(blocking, ql.data(), kl.data(), vl.data(), o3.data(), lse3.data(), dol.data(),
                              dq3.data(), dk3.data(), dv3.data(), loc, ws3);
      EXPECT_EQ(o3, ol);
      EXPECT_EQ(dq3, dql);
      EXPECT_EQ(dk3, dkl);
      EXPECT_EQ(dv3, dvl);
    }
  }
}

TEST(RingAttention, ZigZagSplitKeepsGlobalPositions) {
  const int64_t S = 16, B = 3;
  std::vector<int32_t> tokens(size_t(B * (S + 1)));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i);
  const MicroBatch mb = make_micro_batch(tokens.data(), nullptr, nullptr, S, 0, B);
  for (int cp : {2, 4}) {
    std::vector<int> seen(size_t(S * B), 0);
    for (int r = 0; r < cp; ++r) {
      const MicroBatch m = cp_split(mb, cp, r);
      ASSERT_EQ(m.S, S / cp);
      EXPECT_EQ(m.full_length(), S);
      const int64_t c = S / (2 * cp);
      for (int64_t s = 0; s < m.S; ++s)
        for (int64_t b = 0; b < B; ++b) {
          const int32_t pos = m.positions_N[size_t(s * B + b)];
          EXPECT_EQ(pos, s < c ? r * c + s : (2 * cp - 1 - r) * c + (s - c));
          EXPECT_EQ(m.ids_N[size_t(s * B + b)], tokens[size_t(b * (S + 1) + pos)]);
          EXPECT_EQ(m.targets_N[size_t(s * B + b)], tokens[size_t(b * (S + 1) + pos + 1)]);
          ++seen[size_t(pos * B + b)];
        }
    }
    for (int x : seen) EXPECT_EQ(x, 1);
  }
}
