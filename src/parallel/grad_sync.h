// Gradient finalisation across ranks (docs/dense-parallel.md §8, §9.5, §10 steps 1–2, 5), used when the
// distributed optimizer is off: every rank ends with the fully reduced gradients it holds.
#pragma once

#include "comm/process_groups.h"
#include "core/arena.h"

namespace foldmoe {

// Mean mode: pre-scale dense and expert grads by 1/(DP·CP); dense summed over dp_cp, experts over
// edp; then sequence-parallel-flagged dense grads summed over tp. Per-token mode: no pre-scale.
// Reductions run bucket by bucket (bucket_size elements), bounding the collectives' buffers.
void reduce_gradients(ParamArena& dense, ParamArena& expert, const ProcessGroups& g, bool per_token_loss,
                      int64_t bucket_size = 40000000);

// Sums SP-flagged parameter gradients over tp (finalize step 2).
void reduce_sequence_parallel_grads(ParamArena& dense, const ProcessGroups& g);

// Σ g² counting each logical element once (SP-flagged dense params only on tp rank 0):
// dense over tp_pp, experts over etp_ep_pp (other replicas hold identical reduced grads).
// Returns the squared norms {dense, expert}.
std::pair<double, double> grad_square_norms(const ParamArena& dense, const ParamArena& expert, const ProcessGroups& g);

// Multiplies every gradient of the arena by s.
void scale_grads(ParamArena& a, float s);

}  // namespace foldmoe
