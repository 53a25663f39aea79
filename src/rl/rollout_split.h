// Rollouts split over data-parallel ranks (docs/rl.md §2 with DP): rank d of `dp` generates the
// prompts j ≡ d (mod DP) and the responses are then shared, so every rank holds the whole round.
// The sampling stream of a token is keyed by (prompt id, sample, position), never by the rank, so
// the responses do not depend on the layout (up to fp32 rounding of logits in a different batch).
#pragma once

#include <vector>

#include "comm/communicator.h"
#include "rl/rollout.h"

namespace foldmoe::rl {

// Like generate() over all `prompts`, with the work split over `dp` (opt.lockstep as in generate:
// the group that shares the model's expert collectives, or null). The shared fields are tokens,
// logprob_policy, temperature, routing (when recorded) and finish; logprob_sample and entropy are
// left empty. With dp of size 1 this is generate().
std::vector<Response> generate_split(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                     const SamplingParams& sampling, const RolloutOptions& opt, Communicator& dp);

}  // namespace foldmoe::rl
