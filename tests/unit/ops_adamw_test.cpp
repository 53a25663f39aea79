#include <gtest/gtest.h>

#include <cmath>

#include "ops/adamw.h"

using namespace foldmoe;

namespace {

// torch.optim.AdamW written out in double for one scalar parameter.
struct RefAdamW {
  double p, m = 0, v = 0;
  void step(double g, const ops::AdamWHyper& h) {
    p -= h.lr * h.weight_decay * p;
    m = h.beta1 * m + (1 - h.beta1) * g;
    v = h.beta2 * v + (1 - h.beta2) * g * g;
    const double mhat = m / (1 - std::pow(h.beta1, double(h.step)));
    const double vhat = v / (1 - std::pow(h.beta2, double(h.step)));
    p -= h.lr * mhat / (std::sqrt(vhat) + h.eps);
  }
};

}  // namespace

TEST(OpsAdamW, FirstStepHandComputed) {
  // p = 1, g = 0.5: p → 1 − 1e-4 (decay), m̂ = 0.5, v̂ = 0.25, p −= 1e-3 · 0.5 / (0.5 + 1e-8).
  float p = 1.f, g = 0.5f, m = 0.f, v = 0.f;
  ops::adamw_step(&p, &g, &m, &v, 1, {1e-3, 0.9, 0.999, 1e-8, 0.1, 1});
  EXPECT_NEAR(p, 0.9999 - 1e-3 * 0.5 / (0.5 + 1e-8), 1e-7);
  EXPECT_NEAR(m, 0.05f, 1e-9);
  EXPECT_NEAR(v, 0.00025f, 1e-10);
}

TEST(OpsAdamW, TwoStepsMatchTorchFormula) {
  const std::vector<float> p0 = {0.3f, -1.2f, 2.0f, 0.f, 5e-3f};
  const std::vector<std::vector<float>> grads = {{0.1f, -0.4f, 3.0f, 0.f, 1e-6f}, {-0.2f, 0.1f, 2.5f, 1.f, -1e-6f}};
  std::vector<float> p = p0, m(p0.size(), 0.f), v(p0.size(), 0.f);
  std::vector<RefAdamW> ref;
  for (float x : p0) ref.push_back({x});
  for (int64_t t = 1; t <= 2; ++t) {
    const ops::AdamWHyper h{3e-3, 0.9, 0.95, 1e-8, 0.01, t};
    ops::adamw_step(p.data(), grads[size_t(t - 1)].data(), m.data(), v.data(), int64_t(p.size()), h);
    for (size_t i = 0; i < p.size(); ++i) ref[i].step(grads[size_t(t - 1)][i], h);
  }
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_NEAR(p[i], ref[i].p, 1e-6 * std::max(1.0, std::abs(ref[i].p))) << i;
    EXPECT_NEAR(m[i], ref[i].m, 1e-7) << i;
    EXPECT_NEAR(v[i], ref[i].v, 1e-7) << i;
  }
}

TEST(OpsAdamW, SumSquaresAndScale) {
  std::vector<float> g = {1.f, -2.f, 3.f, 0.5f, -0.25f, 4.f, 1e-3f};
  double ref = 0;
  for (float x : g) ref += double(x) * double(x);
  EXPECT_DOUBLE_EQ(ops::sum_squares(g.data(), int64_t(g.size())), ref);
  EXPECT_EQ(ops::sum_squares(g.data(), 0), 0.0);
  ops::scale_inplace(g.data(), int64_t(g.size()), 0.5f);
  EXPECT_EQ(g[1], -1.f);
  EXPECT_EQ(g[5], 2.f);
}

TEST(OpsAdamW, ConsumeMatchesScaleThenStepAndZeroesGrads) {
  const std::vector<float> p0 = {0.3f, -1.2f, 2.0f, 0.f, 5e-3f, 7.f, -0.1f, 1e-4f, 3.f};  // > one SIMD width
  const std::vector<float> g0 = {0.1f, -0.4f, 3.0f, 0.f, 1e-6f, -2.f, 0.7f, 1e-3f, -0.3f};
  const ops::AdamWHyper h{3e-3, 0.9, 0.95, 1e-8, 0.01, 2};
  const float scale = 0.37f;
  std::vector<float> p = p0, g = g0, m(p0.size(), 0.01f), v(p0.size(), 0.02f);
  ops::scale_inplace(g.data(), int64_t(g.size()), scale);
  ops::adamw_step(p.data(), g.data(), m.data(), v.data(), int64_t(p.size()), h);
  std::vector<float> fp = p0, fg = g0, fm(p0.size(), 0.01f), fv(p0.size(), 0.02f);
  ops::adamw_step_consume(fp.data(), fg.data(), fm.data(), fv.data(), int64_t(fp.size()), h, scale);
  EXPECT_EQ(fp, p);
  EXPECT_EQ(fm, m);
  EXPECT_EQ(fv, v);
  EXPECT_EQ(fg, std::vector<float>(g0.size(), 0.0f));
}
