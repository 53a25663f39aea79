// Causal grouped-query attention, tiled with an online softmax (never materialises S×S).
// Layout is sequence-major like every activation in foldmoe (docs/dense-parallel.md §0): row n = s·B + b.
//   q  [S, B, A, D]   k, v [S, B, G, D]   o [S, B, A, D]   lse [B, A, S] (natural log)
// Query head h reads KV head h / (A/G). Scale 1/sqrt(D).
#pragma once

#include <cstdint>

namespace foldmoe::ops {

struct AttentionShape {
  int64_t S, B, A, G, D;
};

template <typename T>
void attention_forward(const T* q, const T* k, const T* v, T* o, T* lse, const AttentionShape& s);

// dq, dk, dv overwritten. Recomputes the probabilities tile by tile from q, k and lse.
template <typename T>
void attention_backward(const T* q, const T* k, const T* v, const T* o, const T* lse, const T* dout, T* dq, T* dk,
                        T* dv, const AttentionShape& s);

}  // namespace foldmoe::ops
