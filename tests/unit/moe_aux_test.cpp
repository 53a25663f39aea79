// Auxiliary losses and z-loss (docs/moe.md §4, §5): worked example §4.8 (whole and split over a
// group of two), seq-aux == aux for B = 1, micro-batch invariance of seq-aux.
#include <gtest/gtest.h>

#include <cmath>
#include <thread>
#include <vector>

#include "comm/process_groups.h"
#include "core/rng.h"
#include "moe/aux_loss.h"
#include "moe_test_comm.h"

using namespace foldmoe;
using namespace foldmoe::moe;

namespace {

const std::vector<float> kLogits = {2, 1, 0, -1, 0.5f, 0.5f, 0, 0, -1, 0, 3, 1, 0, 2, 2, 0};

AuxOptions opts(bool aux, bool seq, bool z, bool global = false) {
  AuxOptions o;
  o.E = 4, o.k = 2;
  o.aux = aux, o.seq = seq, o.z = z, o.global = global;
  o.alpha_aux = o.alpha_seq = o.alpha_z = o.alpha_global = 1.0;
  return o;
}

struct Out {
  AuxValues v;
  std::vector<float> dl;
};

Out run(const AuxOptions& o, const std::vector<float>& logits, int64_t S, int64_t B, double sigma = 1.0,
        bool per_token = false, GlobalAuxState* gs = nullptr, const std::vector<int32_t>* replay_NK = nullptr) {
  auto one = make_single_rank_communicator("one");
  AuxBatch b;
  b.N = S * B, b.S_loc = S, b.B = B, b.S_full = S, b.sigma = sigma, b.per_token = per_token;
  if (replay_NK) b.replay_NK = replay_NK->data(), b.replay_stride = o.k;
  GlobalAuxState local;
  AuxWorkspace ws;
  std::vector<uint8_t> map;
  Out out;
  out.dl.assign(size_t(b.N * o.E), 0.0f);
  aux_losses_forward(o, logits.data(), b, *one, *one, gs ? *gs : local, ws, map, out.dl.data(), &out.v);
  return out;
}

}  // namespace

TEST(MoeAux, WorkedExampleAuxLoss) {
  const Out r = run(opts(true, false, false), kLogits, 4, 1);
  EXPECT_NEAR(r.v.aux, 1.07962426, 1e-6);
}

TEST(MoeAux, WorkedExampleSeqAux) {
  // B = 2, S = 2: sequence 0 = rows {0, 2} = {t0, t2}, sequence 1 = {t1, t3}.
  const Out r = run(opts(false, true, false), kLogits, 2, 2);
  EXPECT_NEAR(r.v.seq, 1.1258141, 1e-6);
}

TEST(MoeAux, WorkedExampleZLoss) {
  const Out r = run(opts(false, false, true), kLogits, 4, 1);
  EXPECT_NEAR(r.v.z, 6.70809338, 1e-5);
}

// docs/moe.md §4.8 split over a tp_cp group of two ranks (positions t0,t1 | t2,t3, B = 1).
TEST(MoeAux, WorkedExampleSplitPieces) {
  auto state = std::make_shared<moetest::ThreadGroupState>(2);
  moetest::ThreadComm c0(state, 0), c1(state, 1);
  auto one = make_single_rank_communicator("one");
  AuxValues v[2];
  auto work = [&](int r, moetest::ThreadComm& comm, const AuxOptions& o) {
    std::vector<float> logits(kLogits.begin() + r * 8, kLogits.begin() + r * 8 + 8);
    AuxBatch b;
    b.N = 2, b.S_loc = 2, b.B = 1, b.S_full = 4;
    GlobalAuxState gs;
    AuxWorkspace ws;
    std::vector<uint8_t> map;
    std::vector<float> dl(8, 0.0f);
    aux_losses_forward(o, logits.data(), b, comm, *one, gs, ws, map, dl.data(), &v[r]);
  };
  {
    std::thread t0(work, 0, std::ref(c0), opts(true, false, false));
    std::thread t1(work, 1, std::ref(c1), opts(true, false, false));
    t0.join(), t1.join();
  }
  // Calls: counts reduction, then the pieces [aux, seq].
  ASSERT_EQ(c0.history.size(), 2u);
  EXPECT_NEAR(c0.history[1][0], 0.540910443, 1e-6);
  EXPECT_NEAR(c1.history[1][0], 0.53871382, 1e-6);
  EXPECT_NEAR(v[0].aux, 1.07962426, 1e-6);
  EXPECT_NEAR(v[1].aux, 1.07962426, 1e-6);
  c0.history.clear(), c1.history.clear();
  {
    std::thread t0(work, 0, std::ref(c0), opts(false, false, true));
    std::thread t1(work, 1, std::ref(c1), opts(false, false, true));
    t0.join(), t1.join();
  }
  // Calls: valid-token count, then the piece.
  ASSERT_EQ(c0.history.size(), 2u);
  EXPECT_NEAR(c0.history[1][0], 2.18354055, 1e-5);
  EXPECT_NEAR(c1.history[1][0], 4.52455284, 1e-5);
  EXPECT_NEAR(v[0].z, 6.70809338, 1e-5);
}

// Invariant 9: with B = 1 seq-aux equals aux exactly (value and gradient).
TEST(MoeAux, SeqAuxEqualsAuxForOneSequence) {
  std::vector<float> logits(64 * 4);
  CounterRng rng(5, "aux-b1");
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(rng.normal(i));
  for (bool sig : {false, true}) {
    AuxOptions a = opts(true, false, false), s = opts(false, true, false);
    a.sigmoid = s.sigmoid = sig;
    const Out ra = run(a, logits, 64, 1), rs = run(s, logits, 64, 1);
    EXPECT_EQ(ra.v.aux, rs.v.seq);
    EXPECT_EQ(ra.dl, rs.dl);
  }
}

// Gradient of the pieces against central differences of the logged values (double).
TEST(MoeAux, GradientMatchesFiniteDifferences) {
  const int64_t S = 3, B = 2, E = 4;
  std::vector<float> logits(size_t(S * B * E));
  CounterRng rng(9, "aux-fd");
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(rng.normal(i));
  for (bool sig : {false, true}) {
    AuxOptions o = opts(true, true, true);
    o.sigmoid = sig;
    o.alpha_aux = 0.3, o.alpha_seq = 0.7, o.alpha_z = 0.2;
    const Out r = run(o, logits, S, B);
    auto f = [&](const std::vector<float>& l) {
      const Out q = run(o, l, S, B);
      return o.alpha_aux * q.v.aux + o.alpha_seq * q.v.seq + o.alpha_z * q.v.z;
    };
    for (size_t i = 0; i < logits.size(); ++i) {
      std::vector<float> lp(logits), lm(logits);
      const float h = 1e-2f;
      lp[i] += h, lm[i] -= h;
      // Counts are constants of the gradient; h is small enough that the aux map does not move.
      const double fd = (f(lp) - f(lm)) / (2.0 * h);
      EXPECT_NEAR(r.dl[i], fd, 5e-3 + 5e-3 * std::fabs(fd)) << "sigmoid " << sig << " i " << i;
    }
  }
}

// Invariant 12: for a fixed global batch, (B = 1, M = 2) and (B = 2, M = 1) give the same
// seq-aux gradient, in per-token mode (κ = tokens) and in mean mode (σ = 1/M).
TEST(MoeAux, SeqAuxMicroBatchInvariance) {
  const int64_t S = 8, E = 4;
  std::vector<float> seq0(size_t(S * E)), seq1(size_t(S * E));
  CounterRng rng(13, "aux-mb");
  for (size_t i = 0; i < seq0.size(); ++i) seq0[i] = float(rng.normal(i)), seq1[i] = float(rng.normal(500 + i));
  // B = 2: rows n = s·2 + b.
  std::vector<float> both(size_t(2 * S * E));
  for (int64_t s = 0; s < S; ++s)
    for (int64_t e = 0; e < E; ++e) {
      both[size_t((s * 2 + 0) * E + e)] = seq0[size_t(s * E + e)];
      both[size_t((s * 2 + 1) * E + e)] = seq1[size_t(s * E + e)];
    }
  for (bool per_token : {false, true}) {
    const AuxOptions o = opts(false, true, false);
    const Out a = run(o, seq0, S, 1, per_token ? 1.0 : 0.5, per_token);
    const Out b = run(o, seq1, S, 1, per_token ? 1.0 : 0.5, per_token);
    const Out c = run(o, both, S, 2, 1.0, per_token);
    for (int64_t s = 0; s < S; ++s)
      for (int64_t e = 0; e < E; ++e) {
        EXPECT_NEAR(c.dl[size_t((s * 2 + 0) * E + e)], a.dl[size_t(s * E + e)], 1e-7) << per_token;
        EXPECT_NEAR(c.dl[size_t((s * 2 + 1) * E + e)], b.dl[size_t(s * E + e)], 1e-7) << per_token;
      }
  }
}

TEST(MoeAux, GlobalAuxRunningMeanAndReset) {
  GlobalAuxState gs;
  const AuxOptions o = opts(false, false, false, true);
  const Out a = run(o, kLogits, 4, 1, 1.0, false, &gs);
  EXPECT_NEAR(a.v.global, 1.07962426, 1e-6);  // one micro-batch: the same as aux_loss
  EXPECT_EQ(gs.steps, 1);
  run(o, kLogits, 4, 1, 1.0, false, &gs);
  EXPECT_EQ(gs.steps, 2);
  EXPECT_EQ(gs.acc[1], 6.0);
  gs.reset();
  EXPECT_EQ(gs.steps, 0);
  EXPECT_EQ(gs.acc[1], 0.0);
}

// docs/moe.md §4.5 fix: in mean mode the global-aux gradient is multiplied by κ = DP; per-token mode uses the
// token count of the statistic. The logged value does not change.
TEST(MoeAux, GlobalAuxKappa) {
  const AuxOptions o = opts(false, false, false, true);
  auto one = make_single_rank_communicator("one");
  auto go = [&](int dp, bool per_token) {
    AuxBatch b;
    b.N = 4, b.S_loc = 4, b.B = 1, b.S_full = 4, b.dp_size = dp, b.per_token = per_token;
    GlobalAuxState gs;
    AuxWorkspace ws;
    std::vector<uint8_t> map;
    Out out;
    out.dl.assign(16, 0.0f);
    aux_losses_forward(o, kLogits.data(), b, *one, *one, gs, ws, map, out.dl.data(), &out.v);
    return out;
  };
  const Out a = go(1, false), b = go(2, false), c = go(1, true);
  EXPECT_EQ(a.v.global, b.v.global);
  for (size_t i = 0; i < 16; ++i) {
    EXPECT_FLOAT_EQ(b.dl[i], 2.0f * a.dl[i]);
    EXPECT_FLOAT_EQ(c.dl[i], 4.0f * a.dl[i]);  // κ = T_g = 4 tokens
  }
}

// docs/moe.md §4.7: padded tokens are excluded from scores, counts, T and the z-loss, and get no gradient.
TEST(MoeAux, PaddingMaskExcludesTokens) {
  const AuxOptions o = opts(true, true, true);
  auto one = make_single_rank_communicator("one");
  // Tokens t0..t3 plus two padded rows with arbitrary logits: same values as the 4-token run.
  std::vector<float> logits(kLogits);
  for (int i = 0; i < 8; ++i) logits.push_back(float(i) - 3.0f);
  const uint8_t valid[6] = {1, 1, 1, 1, 0, 0};
  AuxBatch b;
  b.N = 6, b.S_loc = 6, b.B = 1, b.S_full = 6, b.valid_N = valid;
  GlobalAuxState gs;
  AuxWorkspace ws;
  std::vector<uint8_t> map;
  std::vector<float> dl(24, 0.0f);
  AuxValues v;
  aux_losses_forward(o, logits.data(), b, *one, *one, gs, ws, map, dl.data(), &v);
  const Out ref = run(o, kLogits, 4, 1);
  EXPECT_NEAR(v.aux, 1.07962426, 1e-6);
  EXPECT_NEAR(v.seq, 1.07962426, 1e-6);
  EXPECT_NEAR(v.z, 6.70809338, 1e-5);
  for (size_t i = 0; i < 16; ++i) EXPECT_FLOAT_EQ(dl[i], ref.dl[i]);
  for (size_t i = 16; i < 24; ++i) EXPECT_EQ(dl[i], 0.0f);
}

// docs/rl.md §12.2 rule 6: under router replay the aux loss counts the replayed experts, while its
// differentiable part stays the live softmax. All four rows replay {2, 3}: c = [0, 0, 4, 4], so
// L = E/(k·T²) · Σ_e c_e·P_e = 4/(2·16) · 4 · (P_2 + P_3), P_e = Σ_n softmax(logits_n)_e.
TEST(MoeAux, ReplayedSelectionSetsTheCounts) {
  const std::vector<int32_t> replay = {2, 3, 3, 2, 2, 3, 3, 2};
  const Out r = run(opts(true, false, false), kLogits, 4, 1, 1.0, false, nullptr, &replay);
  double P23 = 0;
  for (int n = 0; n < 4; ++n) {
    double z = 0;
    for (int e = 0; e < 4; ++e) z += std::exp(double(kLogits[size_t(n * 4 + e)]));
    P23 += (std::exp(double(kLogits[size_t(n * 4 + 2)])) + std::exp(double(kLogits[size_t(n * 4 + 3)]))) / z;
  }
  EXPECT_NEAR(r.v.aux, 0.5 * P23, 1e-6);
  EXPECT_GT(std::abs(r.v.aux - 1.07962426), 0.1);  // not the live-count value
  double g = 0;
  for (float x : r.dl) g += std::abs(x);
  EXPECT_GT(g, 0.0);  // gradient through the live scores
}
