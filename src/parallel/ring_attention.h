// Context-parallel ring attention (docs/dense-parallel.md §4.3, §4.4; `cp_comm_type = p2p`).
//
// Every CP rank r holds the two zig-zag chunks a = r and b = 2·CP−1−r of each sequence,
// concatenated (S_cp = 2c positions, c = S/(2·CP)), in the layout of ops/attention:
//   q [S_cp, B, A, D]   k, v [S_cp, B, G, D]   o [S_cp, B, A, D]   lse [B, A, S_cp]
// A, G are the heads held on this rank (TP splits heads first; the ring runs over `cp`).
// Step i = 0..CP−1 holds the K/V of source s = (r − i) mod CP and passes it to rank (r+1) mod CP:
//   i = 0        own K/V: causal over the local concatenation (a before b)
//   1 ≤ i ≤ r    s < r: all local Q × chunk a' = s of K/V (no mask)
//   i > r        s > r: chunk b of Q × all K/V of s (no mask)
// Partial results are merged with the online softmax in that fixed order. The backward circulates
// K/V with dK/dV accumulators in the same order, so after the full circle each rank holds the
// complete dK, dV of its own chunks. With a backend that has non-blocking point-to-point (MPI),
// the K/V block of step i+1 is in flight while step i computes (forward and backward; the dK/dV
// accumulator follows after each step's contributions); otherwise blocking shifts, same results. With CP = 1 both are ops::attention_forward / _backward.
//
// CpCommType::AllGather (docs/dense-parallel.md §4.5, `parallel.cp_comm_type = "all_gather"`): every rank's K/V
// is all-gathered once and the same steps run on it in the same order (the forward is bit-equal
// to p2p); the dK/dV contributions to each source are summed by one reduce-scatter (another
// summation order: equal to p2p up to fp32 round-off). Fewer, larger messages; P× K/V memory.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "ops/attention.h"

namespace foldmoe {

enum class CpCommType { P2P, AllGather };

// Non-causal attention of Sq queries over Sk keys (every query sees every key), GQA, scale
// 1/sqrt(D). q/o rows s·B+b of [Sq, B, A, D]; k/v [Sk, B, G, D]; lse[(b·A+h)·lse_ld + s]
// (lse_ld >= Sq). o is normalised.
void attention_full_forward(const float* q, const float* k, const float* v, float* o, float* lse, int64_t lse_ld,
                            int64_t Sq, int64_t Sk, int64_t B, int64_t A, int64_t G, int64_t D);
// Adds this block's gradient contributions given the final lse and delta = rowsum(dO ⊙ O) (both
// indexed [(b·A+h)·lse_ld + s]): dq += …, dk += …, dv += … (dk/dv summed over the heads of a KV
// group).
void attention_full_backward(const float* q, const float* k, const float* v, const float* lse, const float* delta,
                             int64_t lse_ld, const float* dout, float* dq, float* dk, float* dv, int64_t Sq,
                             int64_t Sk, int64_t B, int64_t A, int64_t G, int64_t D);

struct RingAttentionWorkspace {
  std::vector<float> kv, kv_next, o_i, lse_i, delta, dq_tmp, dk_tmp, dv_tmp;
};

// sh.S = S_cp (local positions). o, lse overwritten.
void ring_attention_forward(Communicator& cp, const float* q, const float* k, const float* v, float* o, float* lse,
                            const ops::AttentionShape& sh, RingAttentionWorkspace& ws,
                            CpCommType comm = CpCommType::P2P);
// dq, dk, dv overwritten (dk, dv complete for this rank's chunks).
void ring_attention_backward(Communicator& cp, const float* q, const float* k, const float* v, const float* o,
                             const float* lse, const float* dout, float* dq, float* dk, float* dv,
                             const ops::AttentionShape& sh, RingAttentionWorkspace& ws,
                            CpCommType comm = CpCommType::P2P);

}  // namespace foldmoe
