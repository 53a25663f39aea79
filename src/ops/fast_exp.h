// Vectorisable float exp and sigmoid for element-wise kernels (attention tiles, SwiGLU,
// cross-entropy), and a double exp for the sampler. libm's expf is a scalar call that dominates
// such loops; these inline forms let GCC emit SIMD code at about 1 ulp of error, well inside the
// fp32 round-off the reference allows.
#pragma once

#include <bit>
#include <cstdint>

namespace foldmoe::ops {

// Cephes-style range reduction x = n·ln2 + r and a degree-6 polynomial (about 1 ulp). Written so
// that GCC vectorises it under its default -ftrapping-math, which forbids if-converting a branch
// around FP work: n = round(x·log2 e) comes from the 1.5·2^23 trick (the low mantissa bits of kd
// are n as an integer), and x < −87 (result below FLT_MIN, or n outside the trick's range) is
// flushed to 0 with an integer mask instead of a float clamp. Domain: x ≤ 88; NaN propagates.
inline float fast_exp(float x) {
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23
  const float kd = x * 1.44269504088896341f + kRound;
  const int32_t n_int = int32_t(std::bit_cast<uint32_t>(kd) - std::bit_cast<uint32_t>(kRound));
  const float n = kd - kRound;
  float r = x - n * 0.693359375f;  // ln2 split into a short high part and a correction
  r = r + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float e = p * r * r + r + 1.0f;
  const float y = e * std::bit_cast<float>(int32_t(uint32_t(n_int + 127) << 23));
  const int32_t keep = -int32_t(!(x < -87.0f));
  return std::bit_cast<float>(std::bit_cast<int32_t>(y) & keep);
}

// Double exp for the sampler's float64 softmax (src/rl/sampling.cpp), where libm's exp was a
// scalar call per vocabulary entry and draw. Same scheme in float64: the 1.5·2^52 rounding trick,
// ln2 in two parts (the high part has 21 trailing zero bits, so n·ln2_hi is exact), exp(r) on
// |r| ≤ ln2/2 by its degree-13 Taylor polynomial (truncation below 5e-18), 2^n from the exponent
// bits. About 1 ulp. x < −708 (result near or below DBL_MIN) is flushed to 0. Domain: x ≤ 709.
inline double fast_exp(double x) {
  constexpr double kRound = 6755399441055744.0;  // 1.5 · 2^52
  const double kd = x * 1.4426950408889634 + kRound;
  const int64_t n_int = int64_t(std::bit_cast<uint64_t>(kd) - std::bit_cast<uint64_t>(kRound));
  const double n = kd - kRound;
  const double r = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10;
  double p = 1.0 / 6227020800.0;  // 1/13!
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  const double e = p * r + 1.0;
  const double y = e * std::bit_cast<double>(uint64_t(n_int + 1023) << 52);
  const int64_t keep = -int64_t(!(x < -708.0));
  return std::bit_cast<double>(std::bit_cast<int64_t>(y) & keep);
}

// 1 / (1 + e^−a), from t = e^−|a| (always inside fast_exp's domain): 1/(1+t) for a ≥ 0 and
// t/(1+t) for a < 0. The sign select and the |a| are integer bit operations because a float
// clamp or branch would keep GCC from vectorising (-ftrapping-math).
inline float fast_sigmoid(float a) {
  const int32_t bits = std::bit_cast<int32_t>(a);
  const int32_t neg = bits >> 31;  // all ones when the sign bit is set
  const float t = fast_exp(std::bit_cast<float>(bits | int32_t(0x80000000u)));
  const int32_t one = std::bit_cast<int32_t>(1.0f);
  const float num = std::bit_cast<float>((one & ~neg) | (std::bit_cast<int32_t>(t) & neg));
  return num / (1.0f + t);
}

}  // namespace foldmoe::ops
