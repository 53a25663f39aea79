#include "ops/bf16.h"

namespace foldmoe::ops {

// Branch-free form of f32_to_bf16 for the loops below, so that the compiler vectorises them: NaN
// lanes are selected afterwards instead of returned early.
static inline float round_lane(float x) {
  const uint32_t u = std::bit_cast<uint32_t>(x);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
  const uint32_t quiet_nan = (u | 0x00400000u) & 0xffff0000u;
  return std::bit_cast<float>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded);
}

void round_to_bf16(const float* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = round_lane(src[i]);
}

void round_to_bf16_rows(const float* src, int64_t ld, int64_t rows, int64_t cols, float* dst) {
  for (int64_t r = 0; r < rows; ++r) round_to_bf16(src + r * ld, dst + r * cols, cols);
}

}  // namespace foldmoe::ops
