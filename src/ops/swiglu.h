// SwiGLU activation on the FC1 output: ab[rows, 2F] = [a | b] (gate first), h = silu(a) ⊙ b.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

template <typename T>
void swiglu_forward(const T* ab, T* h, int64_t rows, int64_t F);

// dab[rows, 2F] = [dh ⊙ b ⊙ silu'(a) | dh ⊙ silu(a)] (overwritten).
template <typename T>
void swiglu_backward(const T* ab, const T* dh, T* dab, int64_t rows, int64_t F);

}  // namespace foldmoe::ops
