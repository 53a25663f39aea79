// docs/rl.md §5.2; worked example E9.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rl/adaptive_temperature.h"
#include "rl_test_util.h"

using namespace foldmoe::rl;
using foldmoe::rl::test::near_rel;

namespace {
// The E7 statistics, computed from the E7 entropies (checked against the printed tuple).
EntropyStats e7_stats() {
  const std::vector<float> H = {0.9f, 0.02f, 0.3f, 2.4f, 0.005f, 0.06f, 1.5f, 0.15f, 0.6f, 0.01f};
  const EntropyStats s = *compute_entropy_stats(H, 0.8);
  EXPECT_TRUE(near_rel(s.q, -0.105361));
  EXPECT_TRUE(near_rel(s.sigma, 2.7357636));
  EXPECT_TRUE(near_rel(s.s_plus, 2.7892353));
  EXPECT_TRUE(near_rel(s.s_minus, -0.5268219));
  return s;
}
}  // namespace

TEST(RlTemperature, E9TemperaturesFromE7Statistics) {
  const EntropyStats s = e7_stats();
  struct Row {
    float H;
    double h, hhat_int, t_int, hhat_pc, t_pc;
  };
  const std::vector<Row> rows = {
      {3.0f, 0.440086, 1, 1.05, 1, 1.05},
      {0.9f, 0, 0, 1.0, 0, 1.0},
      {0.6f, -0.148209, -0.078080, 0.996096, 0.078080, 1.003904},
      {0.05f, -1.056513, -0.556594, 0.972170, 0.556594, 1.027830},
      {0.001f, -2.486469, -1, 0.95, 1, 1.05},
      {0.0f, -5.011451, -1, 0.95, 1, 1.05},
  };
  AtsParams pi{.enabled = true, .t_base = 1.0f, .tau = 0.05f, .sign = HhatSign::Intended};
  AtsParams pp = pi;
  pp.sign = HhatSign::PaperCode;
  for (const Row& r : rows) {
    EXPECT_TRUE(near_rel(entropy_score(r.H, s, kEntropyFloorSampler, kSigmaEpsSampler), r.h, 1e-5, 1e-2)) << r.H;
    EXPECT_TRUE(near_rel(hhat(r.H, s, HhatSign::Intended, kEntropyFloorSampler, kSigmaEpsSampler), r.hhat_int, 1e-5,
                         1e-2))
        << r.H;
    EXPECT_TRUE(near_rel(ats_temperature(r.H, s, pi), r.t_int, 1e-6)) << r.H;
    EXPECT_TRUE(near_rel(ats_temperature(r.H, s, pp), r.t_pc, 1e-6)) << r.H;
  }
  // Unclamped values of the first and fifth rows, as printed.
  EXPECT_TRUE(near_rel(entropy_score(3.0f, s, kEntropyFloorSampler, kSigmaEpsSampler) * s.s_plus, 1.2275, 1e-4));
  EXPECT_TRUE(near_rel(-entropy_score(0.001f, s, kEntropyFloorSampler, kSigmaEpsSampler) * s.s_minus, -1.3099, 1e-4));
}

TEST(RlTemperature, FirstStepOffAndTauZeroArePlain) {
  const EntropyStats s = e7_stats();
  const AtsParams on{.enabled = true, .t_base = 1.0f, .tau = 0.05f, .sign = HhatSign::Intended};
  EXPECT_EQ(ats_temperature(0.01f, std::nullopt, on), 1.0f);  // step 1: no statistics
  AtsParams off = on;
  off.enabled = false;
  EXPECT_EQ(ats_temperature(0.01f, s, off), 1.0f);
  AtsParams tau0 = on;
  tau0.tau = 0.0f;
  for (float H : {0.0f, 0.01f, 0.9f, 5.0f}) EXPECT_EQ(ats_temperature(H, s, tau0), 1.0f);
  AtsParams base = on;
  base.t_base = 0.7f;
  EXPECT_EQ(ats_temperature(0.01f, std::nullopt, base), 0.7f);
  EXPECT_TRUE(near_rel(ats_temperature(100.0f, s, base), 0.7 * 1.05, 1e-6));
}

TEST(RlTemperature, BandsOfTheTwoSigns) {
  const EntropyStats s = e7_stats();
  const AtsParams pi{.enabled = true, .t_base = 1.0f, .tau = 0.05f, .sign = HhatSign::Intended};
  AtsParams pp = pi;
  pp.sign = HhatSign::PaperCode;
  for (double H = 1e-9; H < 50; H *= 1.7) {
    const float ti = ats_temperature(float(H), s, pi), tp = ats_temperature(float(H), s, pp);
    EXPECT_GE(ti, 0.95f - 1e-7f);
    EXPECT_LE(ti, 1.05f + 1e-7f);
    EXPECT_GE(tp, 1.0f);
    EXPECT_LE(tp, 1.05f + 1e-7f);
  }
}

TEST(RlTemperature, FromLogitsUsesRawEntropy) {
  const EntropyStats s = e7_stats();
  const AtsParams p{.enabled = true, .t_base = 1.0f, .tau = 0.05f, .sign = HhatSign::Intended};
  const std::vector<float> z = {2.0f, 0.5f, -1.0f, 0.0f};
  EXPECT_EQ(ats_temperature_from_logits(z, s, p), ats_temperature(row_entropy(z), s, p));
  EXPECT_EQ(ats_temperature_from_logits(z, std::nullopt, p), 1.0f);
}

TEST(RlTemperature, ParamsFromConfig) {
  const AtsParams h = ats_params(rl_preset_config(RlPreset::Hapo));
  EXPECT_TRUE(h.enabled);
  EXPECT_FLOAT_EQ(h.tau, 0.05f);
  EXPECT_EQ(h.sign, HhatSign::Intended);
  EXPECT_FALSE(ats_params(rl_preset_config(RlPreset::Dapo)).enabled);
  EXPECT_EQ(ats_params(rl_preset_config(RlPreset::HapoReleased)).sign, HhatSign::PaperCode);
}
