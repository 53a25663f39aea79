// SwiGLU activation on the FC1 output: ab[rows, 2F] = [a | b] (gate first), h = silu(a) ⊙ b.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

template <typename T>
void swiglu_forward(const T* ab, T* h, int64_t rows, int64_t F);

// dab[rows, 2F] = [dh ⊙ b ⊙ silu'(a) | dh ⊙ silu(a)] (overwritten).
template <typename T>
void swiglu_backward(const T* ab, const T* dh, T* dab, int64_t rows, int64_t F);

// Expert form with a per-row combine weight p: h = silu(a) ⊙ b and hp = p_r · h in one pass
// (the experts need both: hp feeds FC2, h the gradient of p).
void swiglu_forward_scaled(const float* ab, const float* p, float* h, float* hp, int64_t rows, int64_t F);

// Backward of hp = p_r · swiglu(a, b) w.r.t. a and b: swiglu_backward on dh = p_r · dhp, without
// materialising dh (one pass instead of a scale pass and a SwiGLU pass).
void swiglu_backward_scaled(const float* ab, const float* dhp, const float* p, float* dab, int64_t rows, int64_t F);

}  // namespace foldmoe::ops
