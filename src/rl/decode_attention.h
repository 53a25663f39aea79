// Attention of one new query row against a sequence's key/value cache (a decode step).
//
// The cache is laid out head-major, [G, capacity, D], so each KV head's keys and values are
// contiguous rows that stream from memory (at 64 x 256 the caches are far larger than the caches of
// the CPU, and reading them is most of the cost). Per KV head g the A/G query heads that share it
// form one small GEMM against its [T, D] keys and one against its values, so
// the products run in the BLAS kernels (SIMD) instead of the scalar per-head loop they replace
// (one serial accumulator per dot product, libm expf: 60% of a decode step at 64 x 256). The
// softmax uses the vectorisable fast_exp with partial-lane sums.
#pragma once

#include <cstdint>
#include <vector>

namespace foldmoe::rl {

// o[A, D] = softmax(scale · q[A, D] · K[0..T)ᵀ) · V[0..T) per head, head h reading KV head
// h / (A / G). KV head g's rows: K + g · head_stride, [T, D] (likewise V). scores: scratch
// (resized to (A / G) · (T + D + 1)).
void attend_cached(const float* q, const float* K, const float* V, int64_t T, int64_t A, int64_t G, int64_t D,
                   int64_t head_stride, float scale, float* o, std::vector<float>& scores);

}  // namespace foldmoe::rl
