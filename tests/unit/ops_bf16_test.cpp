// bf16 rounding and the bf16 matrix products (docs/precision.md).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <vector>

#include "grad_check.h"
#include "ops/attention.h"
#include "ops/bf16.h"
#include "ops/linear.h"
#include "ops/matmul_precision.h"

using namespace foldmoe;
using ops::MatmulPrecision;
using ops::MatmulPrecisionScope;

namespace {

float from_bits(uint32_t u) {
  return std::bit_cast<float>(u);
}
uint32_t to_bits(float x) {
  return std::bit_cast<uint32_t>(x);
}

// The bf16 neighbours of x by definition: x's bits truncated to 16, and the next bf16 up in
// magnitude; the nearer wins, a tie goes to the one whose last kept bit is 0.
float round_by_definition(float x) {
  const uint32_t u = to_bits(x);
  const float down = from_bits(u & 0xffff0000u), up = from_bits((u & 0xffff0000u) + 0x10000u);
  const double dd = std::abs(double(x) - double(down)), du = std::abs(double(up) - double(x));
  if (dd < du) return down;
  if (du < dd) return up;
  return ((u >> 16) & 1u) ? up : down;
}

}  // namespace

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(ops::round_to_bf16(1.0f), 1.0f);
  EXPECT_EQ(ops::round_to_bf16(1.0f + 0x1p-8f), 1.0f);                       // tie, 1.0 is even
  EXPECT_EQ(ops::round_to_bf16(1.0f + 3 * 0x1p-8f), 1.0f + 0x1p-6f);         // tie, rounds to even above
  EXPECT_EQ(ops::round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f), 1.0f + 0x1p-7f);  // above the tie
  EXPECT_EQ(ops::round_to_bf16(-2.5f), -2.5f);
  EXPECT_EQ(ops::round_to_bf16(3.14159265f), 3.140625f);
  EXPECT_EQ(to_bits(ops::round_to_bf16(-0.0f)), to_bits(-0.0f));
  EXPECT_EQ(ops::round_to_bf16(std::numeric_limits<float>::infinity()), std::numeric_limits<float>::infinity());
  // The largest floats round past the largest bf16 (0x7f7f) to infinity, as in PyTorch.
  EXPECT_EQ(ops::round_to_bf16(std::numeric_limits<float>::max()), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(ops::round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  // A signalling NaN whose payload sits in the dropped bits must stay NaN (not become infinity).
  EXPECT_TRUE(std::isnan(ops::round_to_bf16(from_bits(0x7f800001u))));
  // Subnormals round like normals (no flush to zero).
  EXPECT_EQ(to_bits(ops::round_to_bf16(from_bits(0x00018000u))), 0x00020000u);
  EXPECT_EQ(to_bits(ops::round_to_bf16(from_bits(0x00008000u))), 0u);
}

TEST(Bf16, VectorRoundingEqualsTheDefinition) {
  std::vector<float> x = test::randn<float>(4096, "bf16-round", 3.0);
  for (size_t i = 0; i < 512; ++i) x[i] *= 1e-38f;  // subnormal range
  x.push_back(std::numeric_limits<float>::infinity());
  x.push_back(-std::numeric_limits<float>::infinity());
  x.push_back(1.0f + 0x1p-8f);
  x.push_back(-(1.0f + 3 * 0x1p-8f));
  std::vector<float> y(x.size());
  ops::round_to_bf16(x.data(), y.data(), int64_t(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    ASSERT_EQ(to_bits(y[i]), to_bits(round_by_definition(x[i]))) << "x = " << x[i];
    ASSERT_EQ(to_bits(y[i]), to_bits(ops::round_to_bf16(x[i])));
    ASSERT_EQ(to_bits(y[i]) & 0xffffu, 0u);
  }
  const float nan_in[2] = {std::numeric_limits<float>::quiet_NaN(), from_bits(0xff800001u)};
  float nan_out[2];
  ops::round_to_bf16(nan_in, nan_out, 2);
  EXPECT_TRUE(std::isnan(nan_out[0]) && std::isnan(nan_out[1]));
}

TEST(Bf16, PrecisionScopesNestAndRestore) {
  EXPECT_EQ(ops::matmul_precision(), MatmulPrecision::F32);
  {
    const MatmulPrecisionScope outer(MatmulPrecision::BF16);
    EXPECT_EQ(ops::matmul_precision(), MatmulPrecision::BF16);
    {
      const MatmulPrecisionScope inner(MatmulPrecision::F32);
      EXPECT_EQ(ops::matmul_precision(), MatmulPrecision::F32);
    }
    EXPECT_EQ(ops::matmul_precision(), MatmulPrecision::BF16);
  }
  EXPECT_EQ(ops::matmul_precision(), MatmulPrecision::F32);
  EXPECT_EQ(ops::parse_precision("bf16"), MatmulPrecision::BF16);
  EXPECT_STREQ(ops::precision_name(ops::parse_precision("fp32")), "fp32");
}

// A bf16 GEMM is: both operands rounded to bf16, products accumulated in fp32. Compare with a
// double GEMM of the rounded operands (differences: fp32 accumulation only), for every transpose
// combination and with leading dimensions larger than the rows.
TEST(Bf16, GemmEqualsDoubleProductOfRoundedOperands) {
  const int64_t M = 37, N = 29, K = 300, pad = 3;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true}) {
      const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
      const int64_t lda = a_cols + pad, ldb = b_cols + pad, ldc = N + pad;
      auto A = test::randn<float>(size_t(a_rows * lda), "A");
      auto B = test::randn<float>(size_t(b_rows * ldb), "B");
      auto C0 = test::randn<float>(size_t(M * ldc), "C");
      std::vector<float> C = C0, C32 = C0;
      {
        const MatmulPrecisionScope bf16(MatmulPrecision::BF16);
        ops::gemm<float>(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C.data(), ldc);
      }
      ops::gemm<float>(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, 0.25f, C32.data(), ldc);
      auto a = [&](int64_t i, int64_t k) {
        return double(ops::round_to_bf16(ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]));
      };
      auto b = [&](int64_t k, int64_t j) {
        return double(ops::round_to_bf16(tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]));
      };
      std::vector<double> ref(size_t(M * N));
      std::vector<float> got(size_t(M * N)), got32(size_t(M * N));
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) {
          double s = 0;
          for (int64_t k = 0; k < K; ++k) s += a(i, k) * b(k, j);
          ref[size_t(i * N + j)] = 0.5 * s + 0.25 * double(C0[size_t(i * ldc + j)]);
          got[size_t(i * N + j)] = C[size_t(i * ldc + j)];
          got32[size_t(i * N + j)] = C32[size_t(i * ldc + j)];
        }
      EXPECT_LT(test::rel_err(got, ref), 1e-6) << "ta=" << ta << " tb=" << tb;
      // The fp32 product differs from it by bf16 rounding: visibly, but within bf16's precision.
      const double e32 = test::rel_err(got32, ref);
      EXPECT_GT(e32, 1e-4) << "ta=" << ta << " tb=" << tb;
      EXPECT_LT(e32, 2e-2) << "ta=" << ta << " tb=" << tb;
      // The padding columns of C are untouched.
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(C[size_t(i * ldc + j)], C0[size_t(i * ldc + j)]);
    }
}

// The ops built on gemm (linear layers, attention) in bf16 against their fp32 results: within
// bf16 tolerance, and visibly different (the precision is really applied).
TEST(Bf16, LinearForwardBackwardWithinBf16Tolerance) {
  const int64_t M = 64, K = 96, N = 80;
  auto x = test::randn<float>(size_t(M * K), "x"), w = test::randn<float>(size_t(N * K), "w", 0.1);
  auto dy = test::randn<float>(size_t(M * N), "dy");
  struct Out {
    std::vector<float> y, dx, dw;
  };
  auto run = [&](MatmulPrecision p) {
    const MatmulPrecisionScope scope(p);
    Out o{std::vector<float>(size_t(M * N)), std::vector<float>(size_t(M * K)),
          std::vector<float>(size_t(N * K), 0.0f)};
    ops::linear_forward(x.data(), w.data(), o.y.data(), M, K, N);
    ops::linear_backward(x.data(), w.data(), dy.data(), o.dx.data(), o.dw.data(), M, K, N);
    return o;
  };
  const Out f32 = run(MatmulPrecision::F32), bf = run(MatmulPrecision::BF16);
  for (auto [a, b] : {std::pair{&bf.y, &f32.y}, {&bf.dx, &f32.dx}, {&bf.dw, &f32.dw}}) {
    const double e = test::rel_err(*a, *b);
    EXPECT_GT(e, 1e-4);
    EXPECT_LT(e, 1e-2);
  }
}

TEST(Bf16, AttentionForwardBackwardWithinBf16Tolerance) {
  const ops::AttentionShape s{.S = 96, .B = 2, .A = 4, .G = 2, .D = 16};
  const size_t nq = size_t(s.S * s.B * s.A * s.D), nkv = size_t(s.S * s.B * s.G * s.D);
  auto q = test::randn<float>(nq, "q"), k = test::randn<float>(nkv, "k"), v = test::randn<float>(nkv, "v");
  auto dout = test::randn<float>(nq, "dout");
  struct Out {
    std::vector<float> o, lse, dq, dk, dv;
  };
  auto run = [&](MatmulPrecision p) {
    const MatmulPrecisionScope scope(p);
    Out r{std::vector<float>(nq), std::vector<float>(size_t(s.B * s.A * s.S)), std::vector<float>(nq),
          std::vector<float>(nkv), std::vector<float>(nkv)};
    ops::attention_forward(q.data(), k.data(), v.data(), r.o.data(), r.lse.data(), s);
    ops::attention_backward(q.data(), k.data(), v.data(), r.o.data(), r.lse.data(), dout.data(), r.dq.data(),
                            r.dk.data(), r.dv.data(), s);
    return r;
  };
  const Out f32 = run(MatmulPrecision::F32), bf = run(MatmulPrecision::BF16);
  for (auto [a, b] : {std::pair{&bf.o, &f32.o}, {&bf.dq, &f32.dq}, {&bf.dk, &f32.dk}, {&bf.dv, &f32.dv}}) {
    const double e = test::rel_err(*a, *b);
    EXPECT_GT(e, 1e-4);
    EXPECT_LT(e, 2e-2);
  }
  // The log-sum-exp is softmax statistics (fp32), computed from bf16 scores: close, not exact.
  EXPECT_LT(test::rel_err(bf.lse, f32.lse), 1e-2);
}
