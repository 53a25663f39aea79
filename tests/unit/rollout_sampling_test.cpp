// Sampling semantics on hand-made distributions: temperature, top-k, top-p (tie rule, order),
// greedy, the per-token temperature hook, the inverse-CDF draw and the counter-based uniforms.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <vector>

#include "rl/sampling.h"

using namespace foldmoe;
using namespace foldmoe::rl;

namespace {

std::vector<float> log_probs(const std::vector<double>& p) {
  std::vector<float> z;
  for (double x : p) z.push_back(float(std::log(x)));
  return z;
}

void expect_dist(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "token " << i;
}

const std::vector<double> kP = {0.5, 0.2, 0.2, 0.1};

TEST(RolloutSampling, TemperatureOnly) {
  const std::vector<float> z = log_probs(kP);
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 1.0), kP);
  // T = 2: p^(1/2) renormalised.
  double s = 0;
  for (double p : kP) s += std::sqrt(p);
  std::vector<double> want;
  for (double p : kP) want.push_back(std::sqrt(p) / s);
  expect_dist(sampling_distribution(z.data(), 4, 2.0, 0, 1.0), want);
  // T = 0.5: p² renormalised.
  s = 0;
  for (double p : kP) s += p * p;
  want.clear();
  for (double p : kP) want.push_back(p * p / s);
  expect_dist(sampling_distribution(z.data(), 4, 0.5, 0, 1.0), want);
}

TEST(RolloutSampling, TopKKeepsLowerIndexOnTies) {
  const std::vector<float> z = log_probs(kP);
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 1, 1.0), {1, 0, 0, 0});
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 2, 1.0), {5.0 / 7, 2.0 / 7, 0, 0});  // 1 beats 2 (tie)
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 3, 1.0), {5.0 / 9, 2.0 / 9, 2.0 / 9, 0});
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 4, 1.0), kP);
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 10, 1.0), kP);
}

TEST(RolloutSampling, TopPSmallestPrefixReachingMass) {
  const std::vector<float> z = log_probs(kP);
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 0.3), {1, 0, 0, 0});
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 0.5), {1, 0, 0, 0});  // 0.5 reaches 0.5
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 0.6), {5.0 / 7, 2.0 / 7, 0, 0});
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 0.85), {5.0 / 9, 2.0 / 9, 2.0 / 9, 0});
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 0, 0.95), kP);
  // Top-p applies to the top-k renormalised distribution: top-3 = (5/9, 2/9, 2/9); 0.7 needs two.
  expect_dist(sampling_distribution(z.data(), 4, 1.0, 3, 0.7), {5.0 / 7, 2.0 / 7, 0, 0});
  // Temperature before the filters: T = 0.5 gives (25, 4, 4, 1)/34; top-p 0.8 keeps 0 and 1.
  expect_dist(sampling_distribution(z.data(), 4, 0.5, 0, 0.8), {25.0 / 29, 4.0 / 29, 0, 0});
}

TEST(RolloutSampling, InverseCdfInFilterOrder) {
  // Probabilities (0.1, 0.5, 0.2, 0.2): order 1, 2, 3, 0 (ties by lower id).
  const std::vector<float> z = log_probs({0.1, 0.5, 0.2, 0.2});
  SamplingParams sp;
  const std::vector<std::pair<double, int>> cases = {{0.01, 1}, {0.49, 1}, {0.51, 2}, {0.69, 2},
                                                     {0.71, 3}, {0.89, 3}, {0.91, 0}, {0.999, 0}};
  for (auto [u, tok] : cases) {
    const TokenDraw d = sample_token(z.data(), 4, sp, u);
    EXPECT_EQ(d.token, tok) << "u = " << u;
    EXPECT_NEAR(d.logprob_sample, std::log(std::vector<double>{0.1, 0.5, 0.2, 0.2}[size_t(tok)]), 1e-6);
    EXPECT_NEAR(d.logprob_policy, d.logprob_sample, 1e-6);  // T = 1, no filter
    EXPECT_EQ(d.temperature, 1.0f);
  }
  sp.top_k = 2;  // keeps 1 (0.5) and 2 (0.2): (5/7, 2/7)
  EXPECT_EQ(sample_token(z.data(), 4, sp, 0.70).token, 1);
  const TokenDraw d = sample_token(z.data(), 4, sp, 0.72);
  EXPECT_EQ(d.token, 2);
  EXPECT_NEAR(d.logprob_sample, std::log(2.0 / 7), 1e-6);
  EXPECT_NEAR(d.logprob_policy, std::log(0.2), 1e-6);
}

TEST(RolloutSampling, InverseCdfOfLargeFlatVocabulariesEqualsTheFullSortWalk) {
  // A near-flat distribution over 3000 ids with many exact ties: the draw for u near 1 walks past
  // every block of the incremental order. Reference: the whole filter order by a stable sort of
  // the ids on descending probability, walked from the front.
  const int64_t V = 3000;
  std::mt19937 gen(7);
  std::uniform_int_distribution<int> level(0, 40);
  std::vector<float> z(static_cast<size_t>(V));
  for (float& x : z) x = 0.01f * float(level(gen));  // 41 distinct values: ties everywhere
  SamplingParams sp;
  sp.temperature = 1.3;
  const std::vector<double> q = sampling_distribution(z.data(), V, sp.temperature, 0, 1.0);
  std::vector<int32_t> order(static_cast<size_t>(V));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return q[size_t(a)] > q[size_t(b)]; });
  std::vector<double> us = {0.0, 1e-4, 0.02, 0.3, 0.5, 0.77, 0.95, 0.999, 0.99999, 0.9999999999, 1.0};
  for (int i = 0; i < 500; ++i) us.push_back((i + 0.37) / 500);  // walks that end anywhere in the order
  for (double u : us) {
    double c = 0;
    int32_t want = order.back();
    for (int32_t v : order) {
      c += q[size_t(v)];
      if (u < c) {
        want = v;
        break;
      }
    }
    EXPECT_EQ(sample_token(z.data(), V, sp, u).token, want) << "u = " << u;
  }
}

TEST(RolloutSampling, GreedyAndEntropy) {
  const std::vector<float> z = {1.0f, 3.0f, 3.0f, -2.0f};
  SamplingParams sp;
  sp.greedy = true;
  TokenDraw d = sample_token(z.data(), 4, sp, 0.99);
  EXPECT_EQ(d.token, 1);  // tie -> lower index
  EXPECT_EQ(d.logprob_sample, 0.0f);
  EXPECT_EQ(d.temperature, 0.0f);
  double s = 0, h = 0;
  for (float x : z) s += std::exp(double(x));
  for (float x : z) h -= std::exp(double(x)) / s * (double(x) - std::log(s));
  EXPECT_NEAR(d.entropy, h, 1e-6);
  EXPECT_NEAR(d.logprob_policy, 3.0 - std::log(s), 1e-6);
  SamplingParams t0;
  t0.temperature = 0;
  EXPECT_EQ(sample_token(z.data(), 4, t0, 0.99).token, 1);
}

TEST(RolloutSampling, TemperatureHookSeesRawEntropy) {
  const std::vector<float> z = log_probs(kP);
  double h = 0;
  for (double p : kP) h -= p * std::log(p);
  SamplingParams sp;
  sp.temperature = 5.0f;  // replaced by the hook
  float seen = -1;
  sp.temperature_fn = [&](float H) {
    seen = H;
    return 0.5f;
  };
  const TokenDraw d = sample_token(z.data(), 4, sp, 0.9);
  EXPECT_NEAR(seen, h, 1e-6);
  EXPECT_EQ(d.temperature, 0.5f);
  // T = 0.5: (25, 4, 4, 1)/34; u = 0.9 -> cumulative 25/34 = 0.735, 29/34 = 0.853, 33/34 = 0.971 -> token 2.
  EXPECT_EQ(d.token, 2);
  EXPECT_NEAR(d.logprob_sample, std::log(4.0 / 34), 1e-6);
  // A hook returning T_base (ATS with tau = 0) equals plain sampling, draw for draw.
  SamplingParams plain, hook1;
  hook1.temperature_fn = [](float) { return 1.0f; };
  for (int i = 0; i < 200; ++i) {
    const double u = sampling_uniform(1, 0, 0, 0, i);
    EXPECT_EQ(sample_token(z.data(), 4, plain, u).token, sample_token(z.data(), 4, hook1, u).token);
  }
}

TEST(RolloutSampling, CounterUniformsAreKeyedAndUniform) {
  EXPECT_EQ(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(3, 2, 5, 1, 7));
  EXPECT_NE(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(3, 2, 5, 1, 8));
  EXPECT_NE(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(3, 2, 5, 2, 7));
  EXPECT_NE(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(3, 2, 6, 1, 7));
  EXPECT_NE(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(3, 3, 5, 1, 7));
  EXPECT_NE(sampling_uniform(3, 2, 5, 1, 7), sampling_uniform(4, 2, 5, 1, 7));
  EXPECT_NE(sampling_uniform(1, 0, 2, 0, 0), sampling_uniform(2, 0, 1, 0, 0));  // seed and prompt not symmetric
  // Empirical frequencies of the filtered distribution.
  const std::vector<float> z = log_probs(kP);
  SamplingParams sp;
  sp.top_p = 0.85f;  // (5/9, 2/9, 2/9, 0)
  std::vector<int> count(4, 0);
  const int n = 20000;
  for (int i = 0; i < n; ++i)
    ++count[size_t(sample_token(z.data(), 4, sp, sampling_uniform(9, 1, i % 17, i / 17, 3)).token)];
  EXPECT_NEAR(count[0] / double(n), 5.0 / 9, 0.015);
  EXPECT_NEAR(count[1] / double(n), 2.0 / 9, 0.015);
  EXPECT_NEAR(count[2] / double(n), 2.0 / 9, 0.015);
  EXPECT_EQ(count[3], 0);
}

}  // namespace
