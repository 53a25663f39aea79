// Router replay (docs/rl.md §12): recorded choices are replayed exactly; replaying a forward's own
// choices reproduces its outputs and gradients bit for bit; a different replay changes routing but
// the router still learns (finite differences on the router weight); E15 combine weights.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "core/check.h"
#include "moe/router.h"
#include "rl/rollout.h"
#include "rollout_test_util.h"

using namespace foldmoe;
using namespace foldmoe::test;

namespace {

// docs/rl.md E15: live logits [2, 1, 0.5, -1], live top-2 {0, 1}, recorded {0, 2}.
TEST(RolloutReplay, WorkedExampleE15) {
  const float logits[4] = {2.0f, 1.0f, 0.5f, -1.0f};
  const int32_t rec[2] = {0, 2};
  MoEConfig m;
  m.num_experts = 4;
  m.topk = 2;
  struct Case {
    const char* score;
    bool pre;
    double w0, w2;
  };
  for (const Case& c : {Case{"softmax", false, 0.817574, 0.182426}, Case{"softmax", true, 0.609460, 0.135989},
                        Case{"sigmoid", false, 0.585926, 0.414074}}) {
    m.score_function = c.score;
    m.pre_softmax = c.pre;
    const moe::RouterOptions o = moe::RouterOptions::from(m);
    float probs[4], saved[4];
    uint8_t map[4];
    moe::route(o, logits, 1, nullptr, probs, map, saved, rec);
    EXPECT_EQ(std::vector<uint8_t>(map, map + 4), (std::vector<uint8_t>{1, 0, 1, 0})) << c.score;
    EXPECT_NEAR(probs[0], c.w0, 1e-6) << c.score << c.pre;
    EXPECT_NEAR(probs[2], c.w2, 1e-6) << c.score << c.pre;
    EXPECT_EQ(probs[1], 0.0f);
    // Gradient of w0: softmax-then-top-k gives dw0/dz0 = w0·w2, dw0/dz2 = -w0·w2, 0 elsewhere.
    if (!c.pre && std::string(c.score) == "softmax") {
      const uint8_t kept[4] = {1, 1, 1, 1};
      const float dprobs[4] = {1, 0, 0, 0};
      float dl[4] = {0, 0, 0, 0};
      moe::route_backward(o, saved, map, kept, dprobs, 1, dl);
      EXPECT_NEAR(dl[0], 0.149146, 1e-6);
      EXPECT_NEAR(dl[2], -0.149146, 1e-6);
      EXPECT_EQ(dl[1], 0.0f);
      EXPECT_EQ(dl[3], 0.0f);
    }
    // A negative first id routes that row live.
    const int32_t live[2] = {-1, -1};
    moe::route(o, logits, 1, nullptr, probs, map, saved, live);
    EXPECT_EQ(std::vector<uint8_t>(map, map + 4), (std::vector<uint8_t>{1, 1, 0, 0}));
  }
}

MicroBatch batch_of(const Config& cfg, int64_t S, int64_t B, uint64_t seed) {
  const std::vector<int32_t> tok = random_tokens(B * (S + 1), cfg.model.vocab, seed);
  return make_micro_batch(tok.data(), nullptr, nullptr, S, 0, B);
}

std::vector<float> grads(Model& m) {
  std::vector<float> g(m.dense().grads(), m.dense().grads() + m.dense().total());
  g.insert(g.end(), m.expert().grads(), m.expert().grads() + m.expert().total());
  return g;
}

MoEStepContext train_ctx() {
  MoEStepContext c;
  c.training = true;
  c.loss_seed = 1.0;
  return c;
}

class ReplayKinds : public ::testing::TestWithParam<std::string> {};

// Replaying the forward's own choices: identical logits, routing and gradients.
TEST_P(ReplayKinds, OwnChoicesReproduceForwardAndGradients) {
  Model m(rollout_config(GetParam()), ProcessGroups::single_process());
  MicroBatch mb = batch_of(m.config(), 6, 3, 5);
  std::vector<float> l0, l1;
  m.dense().zero_grad(), m.expert().zero_grad();
  const MicroBatchResult r0 = m.forward_backward(mb, train_ctx(), &l0);
  const std::vector<float> g0 = grads(m);
  mb.replay_NLK = r0.routing_NLK;
  m.dense().zero_grad(), m.expert().zero_grad();
  const MicroBatchResult r1 = m.forward_backward(mb, train_ctx(), &l1);
  EXPECT_EQ(r1.routing_NLK, r0.routing_NLK);
  EXPECT_EQ(l1, l0);
  EXPECT_EQ(r1.ce_sum, r0.ce_sum);
  EXPECT_EQ(grads(m), g0);
  // Route-flip statistics (docs/rl.md §12.3): every row replayed, none flipped.
  for (const MoEStats& st : r1.moe) {
    EXPECT_EQ(st.replayed_rows, mb.N());
    EXPECT_EQ(st.flipped_rows, 0);
  }
  EXPECT_TRUE(r0.moe.front().flipped_N.empty());  // no replay, no flip statistics
}

// Rollout records replayed in the teacher-forced forward: the replayed choices equal the records
// and the logits are those of the live forward (same weights).
TEST_P(ReplayKinds, RolloutRecordsReplayExactly) {
  Model m(rollout_config(GetParam()), ProcessGroups::single_process());
  const int64_t V = m.config().model.vocab;
  rl::SamplingParams sp;
  rl::RolloutOptions opt;
  opt.max_new_tokens = 8;
  opt.eos_id = -1;  // never stops early
  opt.seed = 3;
  const rl::Response r = rl::generate(m, {random_tokens(5, V, 9)}, sp, opt)[0];
  std::vector<int32_t> seq = random_tokens(5, V, 9);
  seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
  std::vector<int32_t> tok = seq;
  tok.push_back(0);
  MicroBatch mb = make_micro_batch(tok.data(), nullptr, nullptr, int64_t(seq.size()), 0, 1);
  std::vector<float> live, replayed;
  MicroBatchResult rl0, rl1;
  m.forward_logits(mb, live, &rl0);
  mb.replay_NLK = r.routing;  // last position: -1 (routed live)
  m.forward_logits(mb, replayed, &rl1);
  EXPECT_EQ(rl1.routing_NLK, rl0.routing_NLK);
  const int64_t LK = int64_t(m.num_moe_layers()) * m.config().moe.topk;
  for (int64_t i = 0; i < int64_t(seq.size() - 1) * LK; ++i) ASSERT_EQ(rl1.routing_NLK[size_t(i)], r.routing[size_t(i)]);
  EXPECT_EQ(replayed, live);
}

// A different replay (a rotation of every row's experts) is used as given, changes the output, and
// the router weight still receives the analytic gradient of the replayed combine weights.
TEST_P(ReplayKinds, DifferentReplayKeepsRouterGradient) {
  Config cfg = rollout_config(GetParam());
  cfg.moe.enable_expert_bias = false;
  Model m(cfg, ProcessGroups::single_process());
  MicroBatch mb = batch_of(cfg, 5, 2, 17);
  std::vector<float> l0, l1;
  const MicroBatchResult r0 = m.forward_backward(mb, train_ctx(), &l0);
  const int E = cfg.moe.num_experts, K = cfg.moe.topk;
  std::vector<int32_t> rep = r0.routing_NLK;
  for (size_t i = 0; i < rep.size(); i += size_t(K)) {
    // Replace the set {a, b, ..} by {a+1, b+1, ..} mod E (distinct ids, a different set).
    for (int j = 0; j < K; ++j) rep[i + size_t(j)] = (rep[i + size_t(j)] + 1) % E;
  }
  mb.replay_NLK = rep;
  m.dense().zero_grad(), m.expert().zero_grad();
  const MicroBatchResult r1 = m.forward_backward(mb, train_ctx(), &l1);
  std::vector<int32_t> got = r1.routing_NLK, want = rep;
  for (size_t i = 0; i < got.size(); i += size_t(K)) {
    std::sort(got.begin() + int64_t(i), got.begin() + int64_t(i) + K);
    std::sort(want.begin() + int64_t(i), want.begin() + int64_t(i) + K);
  }
  EXPECT_EQ(got, want);
  EXPECT_NE(l1, l0);
  // In the first MoE layer every row's live top-k (its recorded set) differs from the rotated
  // replay: all flipped. Later layers see a changed input, so their live sets may match by chance.
  for (const MoEStats& st : r1.moe) EXPECT_EQ(st.replayed_rows, mb.N());
  EXPECT_EQ(r1.moe.front().flipped_rows, mb.N());
  // Finite differences of the mean CE w.r.t. the router weight of the last MoE layer.
  const std::string name = "layers." + std::to_string(cfg.model.layers - 1) + ".moe.router.weight";
  const int pi = m.dense().find(name);
  ASSERT_GE(pi, 0);
  float* w = m.dense().params() + m.dense().offset(pi);
  const float* g = m.dense().grads() + m.dense().offset(pi);
  const int64_t n = cfg.moe.num_experts * cfg.model.hidden;
  double gmax = 0;
  for (int64_t i = 0; i < n; ++i) gmax = std::max(gmax, double(std::abs(g[i])));
  ASSERT_GT(gmax, 1e-4) << "no gradient reaches the router weight under replay";
  auto loss = [&] {
    std::vector<float> l;
    MicroBatchResult r;
    m.forward_logits(mb, l, &r);
    return r.ce_sum / double(r.n_valid);
  };
  int checked = 0;
  for (int64_t i = 0; i < n && checked < 12; i += 7) {
    const float w0 = w[i];
    const double h = 2e-3;
    w[i] = float(w0 + h);
    const double lp = loss();
    w[i] = float(w0 - h);
    const double lm = loss();
    w[i] = w0;
    const double fd = (lp - lm) / (2 * h);
    EXPECT_NEAR(fd, g[i], 0.01 * std::abs(g[i]) + 2e-3 * gmax) << name << "[" << i << "]";
    ++checked;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, ReplayKinds, ::testing::Values("moe", "moe-sigmoid", "moe-group"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace

namespace {

// Replay needs a dropless MoE (docs/rl.md §12.2 rule 5).
TEST(RolloutReplay, CapacityFactorIsRejected) {
  Config cfg = rollout_config("moe");
  cfg.moe.capacity_factor = 1.0;
  Model m(cfg, ProcessGroups::single_process());
  MicroBatch mb = batch_of(cfg, 4, 1, 3);
  std::vector<float> l;
  MicroBatchResult r;
  m.forward_logits(mb, l, &r);
  mb.replay_NLK = r.routing_NLK;
  EXPECT_THROW(m.forward_logits(mb, l, &r), UserError);
}

}  // namespace
