// The element-wise passes of the tiled attention (ops/attention.cpp) over a block of score rows:
// the forward's online-softmax update and the backward's dS = P ⊙ (dP − Δ). They are the part of
// attention that is not a matrix product, and at head_dim 32 they are a large part of its time
// (a quarter to a third, docs/dense-parallel.md §4.6): one exp per score against 2·32
// multiply-adds per product.
//
// Rows are stacked query heads: row ρ of a block is query position first_pos + ρ / heads (the
// `heads` query heads that share a KV head, position-major), and sees keys j0.. up to its
// position (causal). Columns past a row's last visible key are set to 0.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

struct ScoreRows {
  int64_t rows;       // rows in the block
  int64_t first_pos;  // query position of row 0 (a multiple of heads rows starts each position)
  int64_t heads;      // rows per query position
  int64_t j0, cols;   // the key tile: keys [j0, j0 + cols)
  int64_t ld;         // leading dimension of the score tiles
};

// Forward, per row ρ: m' = max(m, max_c s), e_c = exp(s_c − m'), l = l·exp(m − m') + Σ e,
// o_row ·= exp(m − m'), m = m'. `s` becomes e in place; m, l, o index the block's rows.
void online_softmax_rows(float* s, const ScoreRows& b, float* m, float* l, float* o, int64_t D);
void online_softmax_rows(double* s, const ScoreRows& b, double* m, double* l, double* o, int64_t D);

// Backward, per row ρ: p_c = exp(s_c − lse_ρ) in place of s, dp_c = p_c·(dp_c − Δ_ρ) in place of dp.
void score_grad_rows(float* s, float* dp, const ScoreRows& b, const float* lse, const float* delta);
void score_grad_rows(double* s, double* dp, const ScoreRows& b, const double* lse, const double* delta);

}  // namespace foldmoe::ops
