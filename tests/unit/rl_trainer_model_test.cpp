// The RL policy-loss model path (Model::forward_backward_logits): with dL/dlogp = −1/N on every
// target token it must reproduce the cross-entropy gradient of forward_backward; a clipped policy
// loss matches finite differences of its value; router replay is honoured.
#include <gtest/gtest.h>

#include <cmath>

#include "rl/entropy_stats.h"
#include "rl/policy_loss.h"
#include "rollout_test_util.h"

namespace foldmoe {
namespace {

MicroBatch random_batch(int64_t B, int64_t S, int64_t V, uint64_t seed) {
  std::vector<int32_t> tok = test::random_tokens(B * (S + 1), V, seed);
  std::vector<uint8_t> mask(size_t(B * S), 1);
  for (int64_t i = 0; i < B * S; i += 3) mask[size_t(i)] = 0;  // some positions out of the loss
  return make_micro_batch(tok.data(), mask.data(), nullptr, S, 0, B);
}

std::vector<float> grads_of(Model& m) {
  std::vector<float> g(m.dense().grads(), m.dense().grads() + m.dense().total());
  g.insert(g.end(), m.expert().grads(), m.expert().grads() + m.expert().total());
  return g;
}

void zero(Model& m) {
  m.dense().zero_grad();
  m.expert().zero_grad();
}

// dlogits of Σ_t g_t · log π(target_t) over the masked rows.
Model::LogitsGradFn logp_grad(const MicroBatch& mb, int64_t V, float g) {
  return [&mb, V, g](const std::vector<float>& lg, std::vector<float>& dlg) {
    for (int64_t n = 0; n < mb.N(); ++n) {
      if (!mb.mask_N[size_t(n)]) continue;
      std::span<const float> row(lg.data() + n * V, size_t(V));
      const rl::TokenLogProb tl = rl::token_logprob_entropy(row, mb.targets_N[size_t(n)]);
      rl::token_logprob_backward(row, mb.targets_N[size_t(n)], tl.lse, g, std::span<float>(dlg.data() + n * V, size_t(V)));
    }
  };
}

class PolicyPath : public ::testing::TestWithParam<std::string> {};

TEST_P(PolicyPath, MinusOneOverNReproducesTheCrossEntropyGradient) {
  Config c = test::rollout_config(GetParam());
  Model m(c, ProcessGroups::single_process());
  const int64_t V = c.model.vocab;
  const MicroBatch mb = random_batch(3, 7, V, 11);
  const int64_t nv = mb.valid_count();

  MoEStepContext ctx;
  ctx.loss_seed = 1.0;  // mean mode: per-token gradient 1/n_valid
  zero(m);
  const MicroBatchResult ce = m.forward_backward(mb, ctx);
  const std::vector<float> g_ce = grads_of(m);

  zero(m);
  const MicroBatchResult pl = m.forward_backward_logits(mb, ctx, logp_grad(mb, V, -1.0f / float(nv)));
  const std::vector<float> g_pl = grads_of(m);
  EXPECT_EQ(pl.n_valid, ce.n_valid);
  ASSERT_EQ(g_ce.size(), g_pl.size());
  const double scale = test::max_abs(g_ce.data(), g_ce.size());
  ASSERT_GT(scale, 0);
  double worst = 0;
  for (size_t i = 0; i < g_ce.size(); ++i) worst = std::max(worst, double(std::abs(g_ce[i] - g_pl[i])));
  EXPECT_LE(worst, 1e-5 * scale) << "max |Δg| " << worst << " vs max |g| " << scale;
}

// Σ over masked rows of the clipped policy loss at a fixed old log-prob; gradient vs central FD.
TEST_P(PolicyPath, ClippedPolicyLossMatchesFiniteDifferences) {
  Config c = test::rollout_config(GetParam());
  Model m(c, ProcessGroups::single_process());
  const int64_t V = c.model.vocab;
  const MicroBatch mb = random_batch(2, 6, V, 5);
  std::vector<float> logits;
  m.forward_logits(mb, logits);
  // Old log-probs slightly off the current ones so that some tokens are clipped and some are not.
  std::vector<float> old(size_t(mb.N())), adv(size_t(mb.N()));
  for (int64_t n = 0; n < mb.N(); ++n) {
    const auto tl = rl::token_logprob_entropy(std::span<const float>(logits.data() + n * V, size_t(V)), mb.targets_N[size_t(n)]);
    old[size_t(n)] = tl.logp + (n % 4 == 0 ? 0.5f : 0.02f * float(n % 3));
    adv[size_t(n)] = (n % 2 ? 1.0f : -0.7f);
  }
  rl::PolicyLossParams pp;
  auto loss_of = [&](const std::vector<float>& lg, std::vector<float>* dlg) {
    double total = 0;
    for (int64_t n = 0; n < mb.N(); ++n) {
      if (!mb.mask_N[size_t(n)]) continue;
      std::span<const float> row(lg.data() + n * V, size_t(V));
      const auto tl = rl::token_logprob_entropy(row, mb.targets_N[size_t(n)]);
      const auto t = rl::hapo_token_loss<float>({tl.logp, old[size_t(n)], adv[size_t(n)], 0.0f}, pp);
      total += t.loss;
      if (dlg)
        rl::token_logprob_backward(row, mb.targets_N[size_t(n)], tl.lse, t.dloss_dlogp,
                                   std::span<float>(dlg->data() + n * V, size_t(V)));
    }
    return total;
  };
  MoEStepContext ctx;
  zero(m);
  m.forward_backward_logits(mb, ctx, [&](const std::vector<float>& lg, std::vector<float>& dlg) { loss_of(lg, &dlg); });
  const std::vector<float> g = grads_of(m);
  // Central differences on a few weights of the LM head (the first dense parameters are the embedding).
  float* w = m.dense().params();
  const int64_t total = m.dense().total();
  int checked = 0;
  for (int64_t i = total - 1; i >= 0 && checked < 12; i -= 37) {
    if (std::abs(g[size_t(i)]) < 1e-4) continue;
    const float w0 = w[i];
    const float h = 1e-2f;
    w[i] = w0 + h;
    m.forward_logits(mb, logits);
    const double lp = loss_of(logits, nullptr);
    w[i] = w0 - h;
    m.forward_logits(mb, logits);
    const double lm = loss_of(logits, nullptr);
    w[i] = w0;
    const double fd = (lp - lm) / (2 * h);
    EXPECT_NEAR(fd, g[size_t(i)], 2e-2 * std::abs(fd) + 1e-4) << "param " << i;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST(PolicyPath, RouterReplayUsesTheRecordedExperts) {
  Config c = test::rollout_config("moe");
  Model m(c, ProcessGroups::single_process());
  const int64_t V = c.model.vocab;
  MicroBatch mb = random_batch(2, 5, V, 3);
  std::vector<float> logits;
  MicroBatchResult live;
  m.forward_logits(mb, logits, &live);
  // Replay a different (reversed) selection: the forward must record exactly the replayed ids.
  mb.replay_NLK = live.routing_NLK;
  const int64_t K = c.moe.topk, E = c.moe.num_experts;
  for (size_t i = 0; i < mb.replay_NLK.size(); i += size_t(K))
    for (int64_t j = 0; j < K; ++j) mb.replay_NLK[i + size_t(j)] = int32_t((E - 1) - j);
  MoEStepContext ctx;
  const MicroBatchResult r = m.forward_backward_logits(mb, ctx, logp_grad(mb, V, -0.1f));
  std::vector<int32_t> want = mb.replay_NLK;
  for (size_t i = 0; i < want.size(); i += size_t(K)) std::sort(want.begin() + int64_t(i), want.begin() + int64_t(i) + K);
  EXPECT_EQ(r.routing_NLK, want);
  zero(m);
}

INSTANTIATE_TEST_SUITE_P(Models, PolicyPath, ::testing::Values("dense", "moe", "moe-sigmoid", "hf-qwen3", "hf-olmoe"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
}  // namespace foldmoe
