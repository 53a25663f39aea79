// Rotary position embedding (Llama/HF "rotate half" convention): for head dim D and pair
// i < D/2, angle = pos · theta^(-2i/D); (x_i, x_{i+D/2}) ← (x_i cos − x_{i+D/2} sin,
// x_{i+D/2} cos + x_i sin). Positions are global (docs/dense-parallel.md §4.2), one per row.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

// x[rows, heads, D] rotated in place; pos[rows].
template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta);

// The adjoint: rotation by the negative angle, in place on the gradient.
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta);

}  // namespace foldmoe::ops
