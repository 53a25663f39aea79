// bfloat16: the upper 16 bits of an IEEE float32 (8 exponent bits, 7 mantissa bits).
// Rounding is round-to-nearest-even on the bit pattern, the rule of PyTorch's c10::BFloat16 and
// CUDA's __float2bfloat16_rn, so a bf16 value made here is the one a GPU run makes. NaN stays NaN
// (quieted, sign kept); ±inf and the float32 range are kept (the largest floats round to inf);
// subnormals round like normals (no flush to zero, unlike the AVX512-BF16 conversion
// instruction, which is why foldmoe does not use it). One definition for checkpoints (BF16
// safetensors) and for the bf16 matrix products (ops/bf16.h).
#pragma once

#include <bit>
#include <cstdint>

namespace foldmoe {

inline uint16_t f32_to_bf16(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x0040u);  // NaN: keep it quiet
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

inline float bf16_to_f32(uint16_t b) { return std::bit_cast<float>(uint32_t(b) << 16); }

// x rounded to the nearest bf16 value, as a float (exact: every bf16 is a float).
inline float round_to_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

}  // namespace foldmoe
