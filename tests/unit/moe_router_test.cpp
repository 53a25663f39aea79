// Router (docs/moe.md §2): the worked example of §2.5 row by row, group limits, jitter, backward.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "moe/router.h"

using namespace foldmoe;
using namespace foldmoe::moe;

namespace {

const std::vector<float> kLogits = {2, 1, 0, -1, 0.5f, 0.5f, 0, 0, -1, 0, 3, 1, 0, 2, 2, 0};

struct Routed {
  std::vector<float> probs, saved;
  std::vector<uint8_t> map;
};

Routed run(const RouterOptions& o, const std::vector<float>& logits, const float* bias = nullptr) {
  const int64_t N = int64_t(logits.size()) / o.E;
  Routed r;
  r.probs.resize(logits.size());
  r.saved.resize(logits.size());
  r.map.resize(logits.size());
  route(o, logits.data(), N, bias, r.probs.data(), r.map.data(), r.saved.data());
  return r;
}

RouterOptions opts(bool sigmoid = false, bool pre = false) {
  RouterOptions o;
  o.E = 4, o.k = 2, o.sigmoid = sigmoid, o.pre_softmax = pre;
  return o;
}

// Expects token n to route to exactly {e0, e1} with weights w0, w1.
void expect_token(const Routed& r, int n, int e0, float w0, int e1, float w1) {
  for (int e = 0; e < 4; ++e) {
    const bool in = e == e0 || e == e1;
    EXPECT_EQ(r.map[size_t(n * 4 + e)], in ? 1 : 0) << "token " << n << " expert " << e;
    if (!in) {
      EXPECT_EQ(r.probs[size_t(n * 4 + e)], 0.0f);
    }
  }
  EXPECT_NEAR(r.probs[size_t(n * 4 + e0)], w0, 1e-6) << "token " << n;
  EXPECT_NEAR(r.probs[size_t(n * 4 + e1)], w1, 1e-6) << "token " << n;
}

}  // namespace

TEST(MoeRouter, WorkedExamplePostSoftmax) {
  const Routed r = run(opts(), kLogits);
  expect_token(r, 0, 0, 0.7310586f, 1, 0.2689414f);
  expect_token(r, 1, 0, 0.5f, 1, 0.5f);
  expect_token(r, 2, 2, 0.8807971f, 3, 0.1192029f);
  expect_token(r, 3, 1, 0.5f, 2, 0.5f);
  std::vector<int> c(4, 0);
  for (int n = 0; n < 4; ++n)
    for (int e = 0; e < 4; ++e) c[size_t(e)] += r.map[size_t(n * 4 + e)];
  EXPECT_EQ(c, (std::vector<int>{2, 3, 2, 1}));
}

TEST(MoeRouter, WorkedExamplePreSoftmax) {
  const Routed r = run(opts(false, true), kLogits);
  expect_token(r, 0, 0, 0.6439143f, 1, 0.2368828f);
  expect_token(r, 1, 0, 0.3112297f, 1, 0.3112297f);
  expect_token(r, 2, 2, 0.8309527f, 3, 0.1124572f);
  expect_token(r, 3, 1, 0.4403985f, 2, 0.4403985f);
}

TEST(MoeRouter, WorkedExampleSigmoid) {
  const Routed r = run(opts(true), kLogits);
  expect_token(r, 0, 0, 0.5464491f, 1, 0.4535509f);
  expect_token(r, 1, 0, 0.5f, 1, 0.5f);
  expect_token(r, 2, 2, 0.565785f, 3, 0.434215f);
  expect_token(r, 3, 1, 0.5f, 2, 0.5f);
}

TEST(MoeRouter, WorkedExampleSigmoidExpertBias) {
  const float bias[4] = {0, 0, 0, 0.5f};
  const Routed r = run(opts(true), kLogits, bias);
  expect_token(r, 0, 0, 0.7660847f, 3, 0.2339153f);
  expect_token(r, 1, 0, 0.5545496f, 3, 0.4454504f);
  expect_token(r, 2, 2, 0.565785f, 3, 0.434215f);  // unbiased weights
  expect_token(r, 3, 1, 0.6378903f, 3, 0.3621097f);
}

TEST(MoeRouter, WorkedExampleGroupLimited) {
  RouterOptions o = opts();
  o.num_groups = 2, o.group_topk = 1;
  const Routed r = run(o, kLogits);
  expect_token(r, 0, 0, 0.7310586f, 1, 0.2689414f);
  expect_token(r, 1, 0, 0.5f, 1, 0.5f);
  expect_token(r, 2, 2, 0.8807971f, 3, 0.1192029f);
  expect_token(r, 3, 0, 0.1192029f, 1, 0.8807971f);  // group tie -> group 0
}

TEST(MoeRouter, TopkScalingFactor) {
  RouterOptions o = opts();
  o.scaling = 2.5;
  const Routed r = run(o, kLogits);
  expect_token(r, 0, 0, 2.5f * 0.7310586f, 1, 2.5f * 0.2689414f);
}

// Invariant 10: each token's experts lie in at most g groups.
TEST(MoeRouter, GroupLimitHolds) {
  RouterOptions o;
  o.E = 16, o.k = 4, o.num_groups = 4, o.group_topk = 2;
  const int N = 200;
  std::vector<float> logits(size_t(N * 16));
  CounterRng rng(3, "router-test");
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(rng.normal(i));
  for (bool sig : {false, true}) {
    o.sigmoid = sig;
    const Routed r = run(o, logits);
    for (int n = 0; n < N; ++n) {
      int groups = 0, total = 0;
      for (int q = 0; q < 4; ++q) {
        int in = 0;
        for (int e = 0; e < 4; ++e) in += r.map[size_t(n * 16 + q * 4 + e)];
        groups += in > 0;
        total += in;
      }
      EXPECT_LE(groups, 2);
      EXPECT_EQ(total, 4);
    }
  }
}

// Routing-path backward (docs/moe.md §2.6) against central differences of the combine weights (double sums).
TEST(MoeRouter, BackwardMatchesFiniteDifferences) {
  const int E = 6, N = 5;
  std::vector<float> logits(size_t(N * E)), g(size_t(N * E));
  CounterRng rng(11, "router-bwd");
  for (size_t i = 0; i < logits.size(); ++i) {
    logits[i] = float(1.5 * rng.normal(i));
    g[i] = float(rng.normal(1000 + i));
  }
  for (int variant = 0; variant < 4; ++variant) {
    RouterOptions o;
    o.E = E, o.k = variant == 3 ? 1 : 3;
    o.sigmoid = variant >= 2;
    o.pre_softmax = variant == 1;
    o.scaling = 1.7;
    const Routed r = run(o, logits);
    std::vector<uint8_t> kept(r.map);
    kept[1] = 0;  // pretend some pairs were dropped by capacity
    kept[14] = 0;
    std::vector<float> dl(size_t(N * E), 0.0f);
    route_backward(o, r.saved.data(), r.map.data(), kept.data(), g.data(), N, dl.data());
    auto f = [&](const std::vector<float>& l) {
      const Routed q = run(o, l);
      double s = 0;
      for (size_t i = 0; i < l.size(); ++i)
        if (r.map[i] && kept[i]) s += double(q.probs[i]) * g[i];
      return s;
    };
    for (size_t i = 0; i < logits.size(); ++i) {
      std::vector<float> lp(logits), lm(logits);
      const float h = 1e-2f;
      lp[i] += h, lm[i] -= h;
      if (run(o, lp).map != r.map || run(o, lm).map != r.map) continue;
      const double fd = (f(lp) - f(lm)) / (2.0 * h);
      EXPECT_NEAR(dl[i], fd, 2e-3 + 2e-3 * std::fabs(fd)) << "variant " << variant << " i " << i;
    }
  }
}

TEST(MoeRouter, JitterIsDeterministicAndLayoutFree) {
  const int64_t S = 4, B = 2, H = 8;
  std::vector<float> u1(size_t(S * B * H)), u2(size_t(2 * B * H));
  jitter_multipliers(5, 7, 1, 0.1, S, B, nullptr, nullptr, H, u1.data());
  for (float v : u1) {
    EXPECT_GE(v, 0.9f);
    EXPECT_LE(v, 1.1f);
  }
  // The second half of the positions, as a CP/SP shard would hold them.
  const int64_t seqs[2] = {0, 1};
  const int32_t pos[4] = {2, 2, 3, 3};
  jitter_multipliers(5, 7, 1, 0.1, 2, B, seqs, pos, H, u2.data());
  for (int64_t i = 0; i < 2 * B * H; ++i) EXPECT_EQ(u2[size_t(i)], u1[size_t(2 * B * H + i)]);
  std::vector<float> u3(u1.size());
  jitter_multipliers(5, 8, 1, 0.1, S, B, nullptr, nullptr, H, u3.data());
  EXPECT_NE(u1, u3);
}
