// Scores of given token sequences under a model: the log-probability of every next token and,
// when asked, the logits (`foldmoe logprobs`, docs/logprobs.md). The trainer's forward in
// evaluation mode (no jitter, no aux losses, no expert-bias counts) over any layout.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/process_groups.h"
#include "model/model.h"

namespace foldmoe {

struct SequenceScores {
  std::vector<float> logprobs;  // [len − 1]: log p(token t+1 | tokens 0..t)
  std::vector<float> logits;    // [len − 1, V] (with_logits): the logits at position t, row t
};

// Collective over every rank of `groups`; every rank returns the scores of every sequence (each at
// least 2 tokens, at most the model's context). Each sequence is one micro-batch padded to a
// multiple of TP·CP (·2 with CP); the padding follows the sequence and is masked, so causal
// attention keeps it out of the scored positions. Under DP, round k gives sequence k·DP + d to
// rank d (all micro-batches of a round have one shape); under PP the rounds are the micro-batches
// of one forward-only pipeline schedule.
std::vector<SequenceScores> score_sequences(Model& model, const ProcessGroups& groups,
                                            const std::vector<std::vector<int32_t>>& sequences, bool with_logits);

}  // namespace foldmoe
