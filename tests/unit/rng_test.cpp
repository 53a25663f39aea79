#include <gtest/gtest.h>

#include <cmath>

#include "core/rng.h"

using namespace foldmoe;

// Philox4x32-10 known-answer test (Random123 kat_vectors: counter 0, key 0).
TEST(Rng, PhiloxKnownAnswer) {
  const Philox4 r = philox4x32({0, 0, 0, 0}, {0, 0});
  EXPECT_EQ(r[0], 0x6627e8d5u);
  EXPECT_EQ(r[1], 0xe169c58du);
  EXPECT_EQ(r[2], 0xbc57ac4cu);
  EXPECT_EQ(r[3], 0x9b00dbd8u);
}

TEST(Rng, NormalMomentsAndIndependenceOfOrder) {
  CounterRng rng(7, "layers.0.attn.wq");
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = rng.normal(uint64_t(i));
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.01);
  EXPECT_EQ(rng.normal(12345), CounterRng(7, "layers.0.attn.wq").normal(12345));
  EXPECT_NE(rng.normal(5), CounterRng(7, "layers.0.attn.wk").normal(5));
  EXPECT_NE(rng.normal(5), CounterRng(8, "layers.0.attn.wq").normal(5));
}
