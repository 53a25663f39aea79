// Router (docs/moe.md §2): score functions, top-k with lower-index ties, group-limited routing,
// expert bias (selection only), input jitter, and the explicit backward of docs/moe.md §2.6.
// Letters: N local tokens, E experts, H hidden.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace foldmoe::moe {

struct RouterOptions {
  int E = 0, k = 0;
  bool sigmoid = false;      // score_function == "sigmoid"
  bool pre_softmax = false;  // softmax scores over all E, not renormalised
  double scaling = 1.0;      // topk_scaling_factor c_s (1 when unset)
  int num_groups = 0;        // G_r (0 = no group limit)
  int group_topk = 0;        // g

  static RouterOptions from(const MoEConfig& m);
};

// The k largest entries of z[0..E) (ties -> lower index), written to idx in selection order.
// Entries equal to -inf may be chosen only if fewer than k finite entries exist.
void topk_lower_index(const float* z, int E, int k, int* idx);

// Selection and combine weights for N tokens.
//   logits_NE: router logits; expert_bias_E: selection bias (sigmoid only) or nullptr.
//   probs_NE:  scaled combine weights (0 off the selection), overwritten.
//   map_NE:    1 on the k selected experts, overwritten.
//   saved_NE:  what the backward needs (post-softmax: unscaled p on I; pre-softmax: softmax over
//              all E; sigmoid: unbiased sigmoid scores), overwritten.
//   replay_NK: router replay (docs/rl.md §12): when non-null, row n selects the k expert ids at
//              replay_NK[n·replay_stride ..+k) instead of its own top-k (no group limit, no expert
//              bias); combine weights still follow the score function from the current logits. A row
//              whose first id is negative is routed live. replay_stride 0 means k.
void route(const RouterOptions& o, const float* logits_NE, int64_t N, const float* expert_bias_E, float* probs_NE,
           uint8_t* map_NE, float* saved_NE, const int32_t* replay_NK = nullptr, int64_t replay_stride = 0);

// Routing-path backward (docs/moe.md §2.6). dprobs_NE: gradient w.r.t. the final combine weights;
// kept_NE: routed pairs that survived capacity (others pass no gradient). dlogits_NE += result.
void route_backward(const RouterOptions& o, const float* saved_NE, const uint8_t* map_NE, const uint8_t* kept_NE,
                    const float* dprobs_NE, int64_t N, float* dlogits_NE);

// Input-jitter multipliers u[N,H] ~ U(1-eps, 1+eps) (docs/moe.md §2.8), keyed by (seed, step, layer, global
// sequence index, global position, h) so they do not depend on the layout. Row n = s·B + b.
// global_seq_B / positions_N may be null (then b and s are used).
void jitter_multipliers(uint64_t seed, int64_t step, int layer, double eps, int64_t S_loc, int64_t B,
                        const int64_t* global_seq_B, const int32_t* positions_N, int64_t H, float* u_NH);

}  // namespace foldmoe::moe
