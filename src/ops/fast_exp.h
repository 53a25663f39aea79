// Vectorisable float exp and sigmoid for element-wise kernels (attention tiles, SwiGLU,
// cross-entropy). libm's expf is a scalar call that dominates such loops; these inline forms let
// GCC emit SIMD code at about 1 ulp of error, well inside the fp32 round-off the reference allows.
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
