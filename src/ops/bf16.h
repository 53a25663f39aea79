// bfloat16: the upper 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits).
// Rounding is round-to-nearest-even on the bit pattern, the rule PyTorch's c10::BFloat16 and
// CUDA's __float2bfloat16_rn use, so a bf16 value computed here is the one a GPU run computes.
// NaN stays NaN (quieted); ±inf and the float32 range are kept; subnormals round like normals
// (no flush to zero, unlike the AVX512-BF16 conversion instruction, which is why it is not used).
#pragma once

#include <bit>
#include <cstdint>

namespace foldmoe::ops {

inline uint16_t bf16_bits(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN: keep it quiet
  const uint32_t rounding_bias = 0x7fffu + ((u >> 16) & 1u);
  return uint16_t((u + rounding_bias) >> 16);
}

inline float bf16_to_float(uint16_t b) {
  return std::bit_cast<float>(uint32_t(b) << 16);
}

// x rounded to the nearest bf16 value, returned as a float (exact: every bf16 is a float).
inline float round_to_bf16(float x) {
  return bf16_to_float(bf16_bits(x));
}

// dst[i] = round_to_bf16(src[i]) for i < n (dst may equal src).
void round_to_bf16(const float* src, float* dst, int64_t n);

// Rows [0, rows) of a row-major matrix with leading dimension ld, rounded into a dense
// rows × cols block (leading dimension cols).
void round_to_bf16_rows(const float* src, int64_t ld, int64_t rows, int64_t cols, float* dst);

}  // namespace foldmoe::ops
