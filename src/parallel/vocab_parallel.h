// Vocabulary-parallel embedding and cross-entropy (docs/dense-parallel.md §3). TP rank t holds rows
// [t·V_p/TP, (t+1)·V_p/TP) of the padded vocabulary; rows >= V are padding: zero, never a target,
// excluded from the softmax. No full-vocabulary tensor is ever built. With one rank these are the
// ordinary embedding and cross-entropy.
#pragma once

#include <cstdint>

#include "comm/communicator.h"

namespace foldmoe {

struct VocabShard {
  int64_t first = 0;  // first global row held here
  int64_t rows = 0;   // rows held here (V_p / TP)
  int64_t vocab = 0;  // logical vocabulary V
  int64_t valid() const;  // rows held here that are < V
  static int64_t padded_vocab(int64_t vocab, int tp, int multiple = 128);
  static VocabShard of(int64_t vocab, int tp, int rank, int multiple = 128);
  // The shard a run uses: padded to a multiple of 128·TP when the vocabulary is split; one rank
  // keeps the exact vocabulary (padding is invisible to the math, so it would only add work).
  static VocabShard split(int64_t vocab, int tp, int rank);
};

// out[n, :] = table[ids[n] − first] for ids in this shard, else 0 (the caller sums over tp).
void vp_embedding_forward(const float* table, const int32_t* ids, float* out, int64_t n, int64_t H,
                          const VocabShard& s);
// dtable[ids[n] − first] += dout[n] for ids in this shard.
void vp_embedding_backward(const int32_t* ids, const float* dout, float* dtable, int64_t n, int64_t H,
                           const VocabShard& s);

// Per-row CE over the whole vocabulary from the local logit shard [n, s.rows]; identical on all
// tp ranks. lse[n] saved for the backward. Rows with mask[n] == 0 get loss 0.
void vp_cross_entropy_forward(const float* logits, const int32_t* target, const uint8_t* mask, float* loss, float* lse,
                              int64_t n, const VocabShard& s, Communicator& tp);
// dlogits[n, c] = (softmax_c − [c = target]) · dloss[n] on valid local columns, 0 on padding.
// dlogits may alias logits.
void vp_cross_entropy_backward(const float* logits, const int32_t* target, const uint8_t* mask, const float* lse,
                               const float* dloss, float* dlogits, int64_t n, const VocabShard& s);

// The forward, then the backward seeded with dloss (known up front): loss, lse and dlogits as the
// two calls above give them (dlogits may alias logits). A group of one rank that holds the exact
// vocabulary is ops::cross_entropy_forward_backward itself: no cross-rank max or sum to wait for,
// so each row stays in cache from its forward into its backward.
void vp_cross_entropy_forward_backward(const float* logits, const int32_t* target, const uint8_t* mask,
                                       const float* dloss, float* loss, float* lse, float* dlogits, int64_t n,
                                       const VocabShard& s, Communicator& tp);

}  // namespace foldmoe
