// Rotary position embedding (Llama/HF "rotate half" convention): for head dim D and pair
// i < D/2, angle = pos · inv_freq[i]; (x_i, x_{i+D/2}) ← m·(x_i cos − x_{i+D/2} sin,
// x_{i+D/2} cos + x_i sin). Without scaling inv_freq[i] = theta^(-2i/D) and m = 1; the scaling
// types of transformers' rope_scaling change inv_freq and m (docs/model.md "Architecture
// options"). Positions are global (docs/dense-parallel.md §4.2), one per row.
#pragma once

#include <cstdint>
#include <vector>

#include "config/config.h"

namespace foldmoe::ops {

// The frequencies of one model: D/2 inverse frequencies and the cos/sin multiplier m.
struct RopeTable {
  std::vector<double> inv_freq;
  double attention_factor = 1.0;
};

// Plain RoPE with base theta.
RopeTable rope_table(double theta, int64_t D);
// The table of [model] rope_theta and rope_scaling (none | linear | llama3 | yarn), computed as
// transformers 4.57's modeling_rope_utils.py does.
RopeTable rope_table(const ModelConfig& m, int64_t D);

// x[rows, heads, D] rotated in place; pos[rows].
template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, const RopeTable& table);

// The adjoint (m times the rotation by the negative angle), in place on the gradient.
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, const RopeTable& table);

// Plain RoPE with base theta (tests, reference dumps).
template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta) {
  rope_forward(x, pos, rows, heads, D, rope_table(theta, D));
}
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta) {
  rope_backward(dx, pos, rows, heads, D, rope_table(theta, D));
}

}  // namespace foldmoe::ops
