// Rounding arrays to bf16 for the bf16 matrix products (ops/matmul_precision.h); the scalar rule
// is core/bf16.h's.
#pragma once

#include <cstdint>

#include "core/bf16.h"

namespace foldmoe::ops {

using foldmoe::round_to_bf16;

// dst[i] = round_to_bf16(src[i]) for i < n (dst may equal src).
void round_to_bf16(const float* src, float* dst, int64_t n);

// Rows [0, rows) of a row-major matrix with leading dimension ld, rounded into a dense
// rows × cols block (leading dimension cols).
void round_to_bf16_rows(const float* src, int64_t ld, int64_t rows, int64_t cols, float* dst);

}  // namespace foldmoe::ops
