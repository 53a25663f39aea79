// Incremental inference for the foldmoe decoder with a key/value cache (rollout, generation).
//
// Same math as the training forward (docs/model.md): the q/k/v biases, QK-norm and scaled RoPE of
// the architecture options, RoPE at each sequence's own global positions,
// causal GQA attention, dense or MoE MLP with evaluation-mode routing (no jitter, no aux losses, no
// counters), final RMSNorm and LM head. Each sequence lives in a slot with its own length; there is
// no padding, so positions are exactly 0..len-1 per sequence whatever else is in the batch.
//
// One extend() call runs the decoder over the new tokens only (a ragged batch: any number of tokens
// for any number of slots): prefill is an extend with a whole prompt, a decode step an extend with
// one token per active sequence. A decode step for B sequences of length ≤ L costs O(B·H² + B·L·H)
// per layer (plus the MoE experts the B tokens are routed to), never a re-run of the prefix.
//
// Parameters are read from the model's arenas at every call, so weight updates are seen at once.
// With a capacity factor the MoE drops depend on the rows of one extend() call (as they depend on
// the micro-batch in training); dropless MoE (the RL setting) is row-independent.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "model/model.h"
#include "ops/matmul_precision.h"
#include "ops/rope.h"

namespace foldmoe::rl {

class DecoderEngine {
 public:
  explicit DecoderEngine(Model& model);
  ~DecoderEngine();
  DecoderEngine(const DecoderEngine&) = delete;
  DecoderEngine& operator=(const DecoderEngine&) = delete;

  // A new empty sequence; returns its slot. capacity_hint: expected final length (preallocation).
  int new_sequence(int64_t capacity_hint = 0);
  // A new sequence whose cache is a copy of `slot`'s (n samples of one prefilled prompt).
  int fork_sequence(int slot);
  void free_sequence(int slot);
  int64_t length(int slot) const;

  struct Feed {
    int slot;
    std::span<const int32_t> tokens;  // appended at positions length(slot), length(slot)+1, ...
  };
  // Appends every feed's tokens to its sequence and runs the decoder over them. logits_RV receives
  // the logits of the last token of each feed ([feeds, V]), or of every fed token in feed order when
  // all_logits ([Σ tokens, V]). routing_RLK, if given, receives the selected expert ids of every fed
  // token ([Σ tokens, MoE layers, k], ascending ids within a layer). Slots must be distinct.
  void extend(std::span<const Feed> feeds, std::vector<float>& logits_RV, bool all_logits = false,
              std::vector<int32_t>* routing_RLK = nullptr);

  int64_t vocab() const { return V_; }
  int moe_layers() const { return Lm_; }
  int topk() const { return K_; }

 private:
  struct LayerParams;
  struct Seq;
  int64_t H_, V_, A_, G_, D_;
  int Lm_, K_;
  double eps_;
  std::string qk_norm_;
  ops::MatmulPrecision precision_ = ops::MatmulPrecision::F32;
  ops::RopeTable rope_;
  std::vector<LayerParams> layers_;
  Param embedding_, final_norm_, head_;
  std::vector<Seq> seqs_;
  std::vector<int> free_;
};

}  // namespace foldmoe::rl
