#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "grad_check.h"
#include "ops/attention.h"

using namespace foldmoe;
using ops::AttentionShape;

namespace {

size_t q_size(const AttentionShape& s) {
  return size_t(s.S * s.B * s.A * s.D);
}
size_t kv_size(const AttentionShape& s) {
  return size_t(s.S * s.B * s.G * s.D);
}
std::string name(const AttentionShape& s) {
  return fmt::format("S{} B{} A{} G{} D{}", s.S, s.B, s.A, s.G, s.D);
}

// Full-softmax causal GQA in double, straight from the definition.
void naive_attention(const std::vector<double>& q, const std::vector<double>& k, const std::vector<double>& v,
                     std::vector<double>& o, std::vector<double>& lse, const AttentionShape& s) {
  const int64_t S = s.S, B = s.B, A = s.A, G = s.G, D = s.D;
  auto qi = [&](int64_t t, int64_t b, int64_t h) { return size_t(((t * B + b) * A + h) * D); };
  auto ki = [&](int64_t t, int64_t b, int64_t g) { return size_t(((t * B + b) * G + g) * D); };
  o.assign(q_size(s), 0.0);
  lse.assign(size_t(B * A * S), 0.0);
  std::vector<double> sc(static_cast<size_t>(S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < A; ++h) {
      const int64_t g = h * G / A;
      for (int64_t i = 0; i < S; ++i) {
        double mx = -1e300;
        for (int64_t j = 0; j <= i; ++j) {
          double d = 0;
          for (int64_t c = 0; c < D; ++c) d += q[qi(i, b, h) + size_t(c)] * k[ki(j, b, g) + size_t(c)];
          sc[size_t(j)] = d / std::sqrt(double(D));
          mx = std::max(mx, sc[size_t(j)]);
        }
        double z = 0;
        for (int64_t j = 0; j <= i; ++j) z += std::exp(sc[size_t(j)] - mx);
        for (int64_t j = 0; j <= i; ++j) {
          const double p = std::exp(sc[size_t(j)] - mx) / z;
          for (int64_t c = 0; c < D; ++c) o[qi(i, b, h) + size_t(c)] += p * v[ki(j, b, g) + size_t(c)];
        }
        lse[size_t((b * A + h) * S + i)] = mx + std::log(z);
      }
    }
}

}  // namespace

TEST(OpsAttention, ForwardMatchesNaiveReference) {
  // S crosses the 64-key tiles and the ~256-row query tiles (256 / (A/G) positions) at and off their
  // boundaries; A/G in {1, 2, 4, 8} (at 8, a query tile of 32 positions is narrower than a key tile); B > 1.
  const AttentionShape shapes[] = {{1, 1, 1, 1, 4},   {5, 2, 4, 2, 8},   {64, 1, 2, 2, 16},  {65, 2, 4, 1, 8},
                                   {100, 3, 2, 1, 4}, {130, 1, 4, 4, 8}, {200, 2, 4, 2, 32}, {300, 1, 8, 1, 8},
                                   {530, 1, 2, 1, 4}, {600, 2, 4, 4, 8}};
  for (const auto& s : shapes) {
    auto q = test::randn(q_size(s), "q", 1.5), k = test::randn(kv_size(s), "k", 1.5), v = test::randn(kv_size(s), "v");
    std::vector<double> o(q.size()), lse(size_t(s.B * s.A * s.S)), o_ref, lse_ref;
    ops::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s);
    naive_attention(q, k, v, o_ref, lse_ref, s);
    EXPECT_LT(test::rel_err(o, o_ref), 1e-12) << name(s);
    EXPECT_LT(test::rel_err(lse, lse_ref), 1e-12) << name(s);
  }
}

TEST(OpsAttention, BackwardMatchesFiniteDifferences) {
  const AttentionShape shapes[] = {
      {7, 2, 4, 2, 4}, {70, 1, 2, 2, 3}, {130, 1, 2, 1, 2}, {70, 1, 8, 1, 2}, {140, 1, 2, 1, 2}};
  for (const auto& s : shapes) {
    auto q = test::randn(q_size(s), "q"), k = test::randn(kv_size(s), "k"), v = test::randn(kv_size(s), "v");
    auto R = test::randn(q_size(s), "R");
    std::vector<double> o(q.size()), lse(size_t(s.B * s.A * s.S));
    auto loss = [&] {
      ops::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s);
      return test::dot(o, R);
    };
    loss();
    std::vector<double> dq(q.size(), 9.0), dk(k.size(), 9.0), dv(v.size(), 9.0);  // must be overwritten
    ops::attention_backward(q.data(), k.data(), v.data(), o.data(), lse.data(), R.data(), dq.data(), dk.data(),
                            dv.data(), s);
    EXPECT_LT(test::rel_err(dq, test::numeric_grad(q, loss)), test::kFdTol) << name(s);
    EXPECT_LT(test::rel_err(dk, test::numeric_grad(k, loss)), test::kFdTol) << name(s);
    EXPECT_LT(test::rel_err(dv, test::numeric_grad(v, loss)), test::kFdTol) << name(s);
  }
}

// The float path (polynomial exp, float accumulation) against the double path on the same data.
TEST(OpsAttention, FloatAgreesWithDouble) {
  const AttentionShape shapes[] = {{256, 2, 8, 4, 32}, {97, 3, 4, 4, 16}, {700, 1, 8, 1, 16}};
  for (const auto& s : shapes) {
    auto q = test::randn(q_size(s), "q", 2.0), k = test::randn(kv_size(s), "k", 2.0), v = test::randn(kv_size(s), "v");
    auto dout = test::randn(q_size(s), "dout");
    const size_t nl = size_t(s.B * s.A * s.S);
    std::vector<double> o(q.size()), lse(nl), dq(q.size()), dk(k.size()), dv(v.size());
    ops::attention_forward(q.data(), k.data(), v.data(), o.data(), lse.data(), s);
    ops::attention_backward(q.data(), k.data(), v.data(), o.data(), lse.data(), dout.data(), dq.data(), dk.data(),
                            dv.data(), s);
    auto f = [](const std::vector<double>& x) { return std::vector<float>(x.begin(), x.end()); };
    auto qf = f(q), kf = f(k), vf = f(v), doutf = f(dout);
    std::vector<float> of(q.size()), lsef(nl), dqf(q.size()), dkf(k.size()), dvf(v.size());
    ops::attention_forward(qf.data(), kf.data(), vf.data(), of.data(), lsef.data(), s);
    ops::attention_backward(qf.data(), kf.data(), vf.data(), of.data(), lsef.data(), doutf.data(), dqf.data(),
                            dkf.data(), dvf.data(), s);
    EXPECT_LT(test::rel_err(of, o), 2e-6) << name(s);
    EXPECT_LT(test::rel_err(lsef, lse), 2e-6) << name(s);
    EXPECT_LT(test::rel_err(dqf, dq), 2e-5) << name(s);
    EXPECT_LT(test::rel_err(dkf, dk), 2e-5) << name(s);
    EXPECT_LT(test::rel_err(dvf, dv), 2e-5) << name(s);
  }
}
