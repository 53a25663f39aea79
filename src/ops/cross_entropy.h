// Numerically stable softmax cross-entropy over V classes per row.
#pragma once

#include <cstdint>

namespace foldmoe::ops {

// loss[n] = logsumexp(logits[n]) − logits[n, target[n]]; rows with mask[n] == 0 (mask may be
// nullptr = all valid) get loss 0. lse[n] is saved for the backward.
template <typename T>
void cross_entropy_forward(const T* logits, const int32_t* target, const uint8_t* mask, T* loss, T* lse,
                           int64_t rows, int64_t V);

// dlogits[n, c] = (softmax(logits[n])_c − [c = target[n]]) · dloss[n]; 0 for masked rows.
// Overwrites dlogits (it may alias logits: computed in place row by row).
template <typename T>
void cross_entropy_backward(const T* logits, const int32_t* target, const uint8_t* mask, const T* lse,
                            const T* dloss, T* dlogits, int64_t rows, int64_t V);

// Forward then backward row by row, with the same results as the two calls above: the row is
// still in cache for the backward, instead of streaming all rows·V logits from memory twice.
// dloss must be known up front (it does not depend on the loss values).
template <typename T>
void cross_entropy_forward_backward(const T* logits, const int32_t* target, const uint8_t* mask, const T* dloss,
                                    T* loss, T* lse, T* dlogits, int64_t rows, int64_t V);

}  // namespace foldmoe::ops
