// docs/rl.md §3.3, §3.5, §5.4–§5.6; worked example E10 and the E16 invariants.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "rl/policy_loss.h"
#include "rl_test_util.h"

using namespace foldmoe::rl;
using foldmoe::rl::test::near_rel;

namespace {
PolicyLossParams hapo_params() {
  return PolicyLossParams{.eps_low = 0.2f, .eps_high = 0.28f, .dual_c = 10.0f, .aac = true, .alpha = 1.0f,
                          .dar = true, .beta = 1.0f};
}
// A token whose live log-prob gives ratio r exactly enough: logp_old = 0, logp = ln r.
template <typename F>
HapoTokenT<F> tok(F hhat, F adv, F r) {
  return HapoTokenT<F>{F(std::log(double(r))), F(0), adv, hhat};
}
}  // namespace

TEST(RlPolicyLoss, E10SingleTokens) {
  struct Row {
    double hhat, adv, r, elow, ehigh, zlo, zhi;
    bool in_zone;
    double adv2, loss, grad;
    DarEffect dar;
    ClipState clip;
  };
  const std::vector<Row> rows = {
      {+0.5, +1.2, 1.30, 0.20, 0.42, 0.90, 1.21, false, +1.8, -2.34, -2.34, DarEffect::Amplified, ClipState::None},
      {+0.5, +1.2, 1.05, 0.20, 0.42, 0.90, 1.21, true, +1.2, -1.26, -1.26, DarEffect::None, ClipState::None},
      {-0.6, -0.8, 1.02, 0.32, 0.28, 0.84, 1.14, true, -0.32, 0.3264, 0.3264, DarEffect::Damped, ClipState::None},
      {-0.6, -0.8, 0.75, 0.32, 0.28, 0.84, 1.14, false, -0.8, 0.6, 0.6, DarEffect::None, ClipState::None},
      {+0.6, -0.8, 1.02, 0.20, 0.448, 0.90, 1.224, true, -0.8, 0.816, 0.816, DarEffect::None, ClipState::None},
      {+0.6, -0.8, 0.75, 0.20, 0.448, 0.90, 1.224, false, -1.28, 1.024, 0.0, DarEffect::Amplified, ClipState::Low},
      {0.0, -1.0, 12.0, 0.20, 0.28, 0.90, 1.14, false, -1.0, 10.0, 0.0, DarEffect::None, ClipState::Dual},
  };
  for (size_t k = 0; k < rows.size(); ++k) {
    const Row& w = rows[k];
    const auto t = hapo_token_loss<float>(tok<float>(float(w.hhat), float(w.adv), float(w.r)), hapo_params());
    EXPECT_TRUE(near_rel(t.range.low, w.elow, 1e-5)) << k;
    EXPECT_TRUE(near_rel(t.range.high, w.ehigh, 1e-5)) << k;
    EXPECT_TRUE(near_rel(1 - t.range.low / 2, w.zlo, 1e-5)) << k;
    EXPECT_TRUE(near_rel(1 + t.range.high / 2, w.zhi, 1e-5)) << k;
    EXPECT_EQ(t.in_neutral_zone, w.in_zone) << k;
    EXPECT_EQ(t.dar, w.dar) << k;
    EXPECT_EQ(t.clip, w.clip) << k;
    EXPECT_TRUE(near_rel(t.adv, w.adv2, 1e-5)) << k;
    EXPECT_TRUE(near_rel(t.loss, w.loss, 1e-5)) << k;
    EXPECT_TRUE(near_rel(t.dloss_dlogp, w.grad, 1e-5, 1.0)) << k;
  }
}

TEST(RlPolicyLoss, E10StaticDapoClippingContrast) {
  PolicyLossParams dapo = hapo_params();
  dapo.aac = dapo.dar = false;
  const auto a = hapo_token_loss<float>(tok<float>(0.5f, 1.2f, 1.3f), dapo);
  EXPECT_TRUE(near_rel(a.loss, -1.536, 1e-5));
  EXPECT_EQ(a.dloss_dlogp, 0.0f);
  EXPECT_EQ(a.clip, ClipState::High);
  const auto b = hapo_token_loss<float>(tok<float>(-0.6f, -0.8f, 0.75f), dapo);
  EXPECT_TRUE(near_rel(b.loss, 0.64, 1e-5));
  EXPECT_EQ(b.dloss_dlogp, 0.0f);
  EXPECT_EQ(b.clip, ClipState::Low);
}

TEST(RlPolicyLoss, GradientRulesOfSection35) {
  const ClipRangeT<double> rg{0.2, 0.28};
  // A > 0: gradient iff r <= 1 + ε_high.
  for (double r : {0.1, 0.5, 0.8, 1.0, 1.2, 1.2799}) {
    const auto t = clipped_token_loss<double>(std::log(r), 0.0, 1.5, rg, 10.0);
    EXPECT_NEAR(t.dloss_dlogp, -1.5 * r, 1e-12) << r;
  }
  EXPECT_EQ(clipped_token_loss<double>(std::log(1.29), 0.0, 1.5, rg, 10.0).dloss_dlogp, 0.0);
  // A < 0: gradient iff 1 − ε_low <= r <= c.
  for (double r : {0.8001, 1.0, 2.0, 9.99}) {
    const auto t = clipped_token_loss<double>(std::log(r), 0.0, -0.5, rg, 10.0);
    EXPECT_NEAR(t.dloss_dlogp, 0.5 * r, 1e-9) << r;
  }
  EXPECT_EQ(clipped_token_loss<double>(std::log(0.79), 0.0, -0.5, rg, 10.0).dloss_dlogp, 0.0);
  EXPECT_EQ(clipped_token_loss<double>(std::log(10.01), 0.0, -0.5, rg, 10.0).dloss_dlogp, 0.0);
  // Dual clip disabled (c = 0): r = 12 keeps the gradient and the unclipped loss.
  const auto nd = clipped_token_loss<double>(std::log(12.0), 0.0, -1.0, rg, 0.0);
  EXPECT_NEAR(nd.loss, 12.0, 1e-9);
  EXPECT_NEAR(nd.dloss_dlogp, 12.0, 1e-9);
  EXPECT_EQ(nd.clip, ClipState::None);
  // A = 0: never a gradient, loss 0.
  const auto z = clipped_token_loss<double>(std::log(1.1), 0.0, 0.0, rg, 10.0);
  EXPECT_EQ(z.loss, 0.0);
  EXPECT_EQ(z.dloss_dlogp, 0.0);
  // Symmetric GRPO range 0.2 / 0.2.
  const ClipRangeT<double> sym{0.2, 0.2};
  EXPECT_EQ(clipped_token_loss<double>(std::log(1.25), 0.0, 1.0, sym, 10.0).clip, ClipState::High);
  EXPECT_NEAR(clipped_token_loss<double>(std::log(1.25), 0.0, 1.0, sym, 10.0).loss, -1.2, 1e-12);
}

TEST(RlPolicyLoss, LogRatioClampIsSafe) {
  const ClipRangeT<float> rg{0.2f, 0.28f};
  // Huge negative log-ratio with A > 0: r = e^-20, unclipped term active but the clamp stops the gradient.
  const auto t = clipped_token_loss<float>(-100.0f, 0.0f, 1.0f, rg, 10.0f);
  EXPECT_TRUE(std::isfinite(t.loss));
  EXPECT_EQ(t.dloss_dlogp, 0.0f);
  EXPECT_EQ(t.clip, ClipState::LogRatio);
  const auto u = clipped_token_loss<float>(100.0f, 0.0f, -1.0f, rg, 10.0f);
  EXPECT_FLOAT_EQ(u.loss, 10.0f);
  EXPECT_EQ(u.dloss_dlogp, 0.0f);
}

TEST(RlPolicyLoss, GradientMatchesFiniteDifferences) {
  // d(Σ w·ℓ)/d log π_θ in binary64 against central differences, at random points away from the
  // kinks (clip ends, the dual clip and the DAR zone edges, where ℓ is not differentiable).
  const foldmoe::CounterRng rng(77, "rl-fd");
  int checked = 0, with_grad = 0;
  for (int64_t k = 0; k < 4000 && checked < 400; ++k) {
    const double hh = std::clamp(rng.normal(4 * uint64_t(k)) * 0.6, -1.0, 1.0);
    const double adv = rng.normal(4 * uint64_t(k) + 1) * 1.5;
    const double lr = rng.normal(4 * uint64_t(k) + 2) * 0.5;
    const double lo = rng.normal(4 * uint64_t(k) + 3) * 2.0;
    for (HhatSign sign : {HhatSign::Intended, HhatSign::PaperCode}) {
      const double g = sign == HhatSign::PaperCode ? std::abs(hh) : hh;
      PolicyLossParams p = hapo_params();
      p.aac = (k % 3) != 0;
      p.dar = (k % 5) != 0;
      const HapoTokenT<double> t0{lo + lr, lo, adv, g};
      const auto base = hapo_token_loss<double>(t0, p);
      const double r = base.ratio;
      const double kinks[] = {1 - base.range.low, 1 + base.range.high, 1 - base.range.low / 2,
                              1 + base.range.high / 2, 10.0};
      bool near_kink = false;
      for (double x : kinks) near_kink = near_kink || std::abs(r - x) < 1e-3;
      if (near_kink) continue;
      const double h = 1e-6, w = 0.37;
      HapoTokenT<double> tp = t0, tm = t0;
      tp.logp += h;
      tm.logp -= h;
      const double num = w * (hapo_token_loss<double>(tp, p).loss - hapo_token_loss<double>(tm, p).loss) / (2 * h);
      EXPECT_NEAR(w * base.dloss_dlogp, num, 1e-7 * (1 + std::abs(num))) << k;
      ++checked;
      with_grad += base.dloss_dlogp != 0;
    }
  }
  EXPECT_GE(checked, 400);
  EXPECT_GE(with_grad, 100);
}

TEST(RlPolicyLoss, BatchDriverWeightsCountsAndFp32MatchesDouble) {
  const std::vector<float> logp = {-1.0f, -0.5f, -2.0f, -0.1f, -3.0f, -1.2f};
  const std::vector<float> logp_old = {-1.2f, -0.5f, -1.0f, -0.1f, -3.0f, -1.0f};
  const std::vector<float> adv = {1.0f, 1.0f, -0.5f, -0.5f, 0.0f, 2.0f};
  const std::vector<float> hh = {0.5f, -0.3f, -1.0f, 0.0f, 0.2f, 1.0f};
  const std::vector<float> w = {0.2f, 0.2f, 0.2f, 0.2f, 0.2f, 0.0f};  // last position: padding
  const PolicyLossParams p = hapo_params();
  const PolicyLossResult r = policy_loss({logp, logp_old, adv, hh, w, {}}, p);
  double ref = 0;
  for (size_t j = 0; j < 5; ++j) {
    const auto t = hapo_token_loss<double>(HapoTokenT<double>{logp[j], logp_old[j], adv[j], hh[j]}, p);
    ref += 0.2 * t.loss;
    EXPECT_NEAR(r.dloss_dlogp[j], 0.2 * t.dloss_dlogp, 1e-6) << j;
  }
  EXPECT_NEAR(r.loss, ref, 1e-6);
  EXPECT_EQ(r.dloss_dlogp[5], 0.0f);
  EXPECT_EQ(r.counters.tokens, 5);
  EXPECT_EQ(r.counters.hhat_nonpositive, 3);
  // Empty hhat = no modulation; zero-weight batch = zero loss.
  const std::vector<float> zero(6, 0.0f);
  const PolicyLossResult e = policy_loss({logp, logp_old, adv, {}, zero, {}}, p);
  EXPECT_EQ(e.loss, 0.0);
  EXPECT_EQ(e.counters.tokens, 0);
  EXPECT_EQ(e.counters.frac(e.counters.clip_high), 0.0);
}

TEST(RlPolicyLoss, ClipCountersAndMetrics) {
  // One token of each clip kind.
  const std::vector<float> logp = {std::log(1.5f), std::log(0.5f), std::log(12.0f), 0.0f};
  const std::vector<float> old(4, 0.0f);
  const std::vector<float> adv = {1.0f, -1.0f, -1.0f, 1.0f};
  const std::vector<float> w(4, 0.25f);
  PolicyLossParams p = hapo_params();
  p.aac = p.dar = false;
  const PolicyLossResult r = policy_loss({logp, old, adv, {}, w, {}}, p);
  EXPECT_EQ(r.counters.clip_high, 1);
  EXPECT_EQ(r.counters.clip_low, 1);
  EXPECT_EQ(r.counters.clip_dual, 1);
  EXPECT_DOUBLE_EQ(r.counters.frac(r.counters.clip_dual), 0.25);
  EXPECT_NEAR(r.counters.mean_ratio(), (1.5 + 0.5 + 12 + 1) / 4, 1e-5);
  PolicyLossCounters sum = r.counters;
  sum.add(r.counters);
  EXPECT_EQ(sum.tokens, 8);
  EXPECT_EQ(sum.clip_high, 2);
}

TEST(RlPolicyLoss, E16FirstMinibatchInvariants) {
  // r = 1 everywhere: paper-code DAR returns A′ = A; intended gives A(1 + h̃) for h̃ <= 0, A for h̃ > 0;
  // no token is clipped.
  for (float g : {-1.0f, -0.6f, -0.1f, 0.0f, 0.3f, 1.0f}) {
    for (float a : {-1.3f, 0.7f}) {
      const auto ti = hapo_token_loss<float>(HapoTokenT<float>{-0.7f, -0.7f, a, g}, hapo_params());
      EXPECT_EQ(ti.ratio, 1.0f);
      EXPECT_EQ(ti.clip, ClipState::None);
      EXPECT_FLOAT_EQ(ti.adv, g <= 0 ? a * (1 + g) : a);
      const auto tp = hapo_token_loss<float>(HapoTokenT<float>{-0.7f, -0.7f, a, std::abs(g)}, hapo_params());
      EXPECT_EQ(tp.adv, a);
    }
  }
  // h̃ = −1, β = 1: A′ = 0, contributes 0.
  const auto z = hapo_token_loss<float>(HapoTokenT<float>{-0.7f, -0.7f, -2.0f, -1.0f}, hapo_params());
  EXPECT_EQ(z.adv, 0.0f);
  EXPECT_EQ(z.loss, 0.0f);
}

TEST(RlPolicyLoss, HapoWithComponentsOffEqualsDapoBitForBit) {
  const foldmoe::CounterRng rng(5, "rl-dapo-eq");
  PolicyLossParams off = hapo_params();
  off.aac = off.dar = false;
  for (uint64_t k = 0; k < 200; ++k) {
    const float lp = float(rng.normal(3 * k) * 0.3), a = float(rng.normal(3 * k + 1)),
                g = float(std::clamp(rng.normal(3 * k + 2), -1.0, 1.0));
    const auto h = hapo_token_loss<float>(HapoTokenT<float>{lp, 0.0f, a, g}, off);
    const auto d = clipped_token_loss<float>(lp, 0.0f, a, ClipRange{0.2f, 0.28f}, 10.0f);
    EXPECT_EQ(h.loss, d.loss);
    EXPECT_EQ(h.dloss_dlogp, d.dloss_dlogp);
  }
}

TEST(RlPolicyLoss, SwitchesAacAndDar) {
  // AAC off: ranges stay at the base for any h̃.
  const auto r0 = aac_clip_range<float>(0.9f, 0.2f, 0.28f, false, 1.0f);
  EXPECT_EQ(r0.low, 0.2f);
  EXPECT_EQ(r0.high, 0.28f);
  // α scales the widening.
  const auto r2 = aac_clip_range<float>(-0.5f, 0.2f, 0.28f, true, 2.0f);
  EXPECT_FLOAT_EQ(r2.low, 0.4f);
  EXPECT_EQ(r2.high, 0.28f);
  // DAR off: A′ = A; β scales the multiplier; neutral zone is open.
  EXPECT_EQ(dar_advantage<float>(1.0f, 0.5f, 2.0f, {0.2f, 0.28f}, false, 1.0f).adv, 1.0f);
  EXPECT_FLOAT_EQ(dar_advantage<float>(1.0f, 0.5f, 2.0f, {0.2f, 0.28f}, true, 0.5f).adv, 1.25f);
  // Zone (0.75, 1.25) for ranges 0.5 / 0.5 (exact in binary): the ends are outside.
  EXPECT_FALSE(dar_advantage<double>(1.0, -0.5, 0.75, {0.5, 0.5}, true, 1.0).in_neutral_zone);
  EXPECT_FALSE(dar_advantage<double>(1.0, -0.5, 1.25, {0.5, 0.5}, true, 1.0).in_neutral_zone);
  EXPECT_EQ(dar_advantage<double>(1.0, -0.5, 1.25, {0.5, 0.5}, true, 1.0).adv, 1.0);
  EXPECT_TRUE(dar_advantage<double>(1.0, -0.5, 1.2499, {0.5, 0.5}, true, 1.0).in_neutral_zone);
  EXPECT_EQ(dar_advantage<double>(1.0, -0.5, 1.2499, {0.5, 0.5}, true, 1.0).adv, 0.5);
}

TEST(RlPolicyLoss, KlK3TermAndGradient) {
  const auto k = kl_k3<double>(-1.0, -1.3, 0.1);
  const double d = -0.3;
  EXPECT_NEAR(k.value, 0.1 * (std::exp(d) - d - 1), 1e-15);
  const double h = 1e-6;
  const double num = (kl_k3<double>(-1.0 + h, -1.3, 0.1).value - kl_k3<double>(-1.0 - h, -1.3, 0.1).value) / (2 * h);
  EXPECT_NEAR(k.dvalue_dlogp, num, 1e-9);
  EXPECT_EQ(kl_k3<double>(-1.0, -1.0, 0.1).value, 0.0);
  const std::vector<float> lp = {-1.0f}, old = {-1.0f}, adv = {0.0f}, w = {1.0f}, ref = {-1.3f};
  PolicyLossParams p = hapo_params();
  p.kl_coef = 0.1f;
  const auto r = policy_loss({lp, old, adv, {}, w, ref}, p);
  EXPECT_NEAR(r.loss, k.value, 1e-6);
  EXPECT_NEAR(r.dloss_dlogp[0], k.dvalue_dlogp, 1e-6);
}

TEST(RlPolicyLoss, ParamsFromPresets) {
  const PolicyLossParams h = policy_loss_params(rl_preset_config(RlPreset::Hapo));
  EXPECT_TRUE(h.aac && h.dar);
  EXPECT_FLOAT_EQ(h.eps_high, 0.28f);
  EXPECT_FLOAT_EQ(h.dual_c, 10.0f);
  const PolicyLossParams g = policy_loss_params(rl_preset_config(RlPreset::Grpo));
  EXPECT_FALSE(g.aac || g.dar);
  EXPECT_FLOAT_EQ(g.eps_high, 0.2f);
}
