// The stages of one RL step (the numbering of trainer.h) and what each hands the next.
// RlTrainer::step runs them in order:
//   rollout        stages 1-3 (+3b): responses, rewards, summaries          -> RolloutBatch
//   mini-batches   the seeded partition of every epoch, fixed before stage 4 -> MinibatchPlan
//   old policy     stage 4: log π_old, entropies, log π_ref, route flips     -> OldPolicyPass
//   statistics     stage 5: S_k and h̃ per epoch                             -> EntropyStage
//   advantages     stage 6                                                   -> BatchAdvantages
//   updates        stages 7-8: the mini-batch updates                        -> UpdateTotals
//   metrics        the step's metrics.jsonl record                           -> step_record
// The stages that need the model are RlTrainer members; the others are the pure functions here,
// unit-tested on their own (tests/unit/rl_step_stages_test.cpp).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <span>
#include <vector>

#include "rl/advantage.h"
#include "config/rl_section.h"
#include "rl/entropy_stats.h"
#include "rl/step_metrics.h"
#include "rl/policy_loss.h"
#include "rl/tasks.h"

namespace foldmoe::rl {

// One response of the step with everything the later stages need.
struct RlSample {
  RlProblem problem;
  int64_t problem_index = 0;           // global training-problem index (RNG key of its rollout)
  std::vector<int32_t> prompt;         // <bos> + prompt tokens (left-truncated)
  std::vector<int32_t> tokens;         // response tokens (EOS included when present)
  std::vector<int32_t> routing;        // rollout router record [P + L, Lm, k] (mode rollout)
  std::vector<int32_t> old_routing;    // stage-4 selection [P + L - 1, Lm, k] (mode old)
  std::vector<float> temperature;      // sampling temperature per token
  std::vector<float> logprob_rollout;  // rollout log-prob at T = 1 (diagnostics)
  int64_t length = 0;
  bool truncated = false;
  float reward = 0, penalty = 0;
  bool acc = false;
  std::vector<float> logp_old, ent_old;  // stage 4
  std::vector<float> logp_ref;           // stage 4, frozen reference (kl_coef > 0)
};

// Stages 1-3 (+3b): the training batch and the summaries of everything generated for it.
struct RolloutBatch {
  std::vector<RlSample> samples;  // P·n responses, group g = samples [g·n, (g+1)·n)
  RolloutSummary generated;       // every response of every dynamic-sampling round
  SeriesSummary temperature;      // sampling temperatures of those responses
  int rounds = 1;
  int64_t generated_tokens = 0;
  double seconds = 0;
};
// The summary of a set of responses (group after group of `group_size`).
RolloutSummary summarize_samples(std::span<const RlSample> samples, int group_size);

// The mini-batch partition of every PPO epoch: one seeded permutation of the responses per epoch,
// mini-batch b of epoch e = responses perms[e][b·per_minibatch, (b+1)·per_minibatch).
struct MinibatchPlan {
  int64_t minibatches = 0, per_minibatch = 0;
  std::vector<std::vector<int64_t>> perms;  // [epoch] -> permutation of [0, responses)
  int epochs() const { return int(perms.size()); }
  // The responses of mini-batch b of epoch e.
  std::span<const int64_t> minibatch(int e, int64_t b) const;
  // Its responses that rank d of DP trains (position j of the mini-batch goes to rank j mod DP), cut
  // into micro-batches of at most micro_batch responses.
  std::vector<std::vector<int64_t>> micro_batches(int e, int64_t b, int DP, int d, int64_t micro_batch) const;
};
MinibatchPlan plan_minibatches(uint64_t seed, int64_t step, int epochs, int64_t responses, int64_t minibatches);

// Stage 4's step-level results (the per-token ones are in the samples).
struct OldPolicyPass {
  // Route flips under replay (docs/rl.md §12.3), summed over DP: flipped rows per MoE layer, then the
  // replayed rows, then the rows flipped in at least one layer.
  std::vector<double> flips;
  int64_t tokens = 0;  // rows forwarded on this rank
};

// Stage 5: entropy statistics S_k over every response token, and for DAR/AAC with scope
// minibatch-old the h̃ of every token from its mini-batch's statistics, per epoch.
struct EntropyStage {
  std::optional<EntropyStats> stats;
  SeriesSummary summary;
  std::vector<int64_t> offset;                 // response i's tokens are [offset[i], offset[i+1])
  std::vector<std::vector<float>> hhat_epoch;  // [epoch][token]; empty unless scope minibatch-old
};
EntropyStage entropy_stage(std::span<const RlSample> batch, const MinibatchPlan& plan, const RlConfig& rl);

// Stage 6: advantages of the batch's rewards and lengths.
BatchAdvantages advantage_stage(std::span<const RlSample> batch, const RlConfig& rl);

// Stages 7-8: the totals of the step's mini-batch updates, summed over DP.
struct UpdateTotals {
  PolicyLossCounters counters;
  double loss_sum = 0;  // Σ over updates of the mini-batch objective
  double sum_norm = 0;  // Σ gradient norms of the applied updates
  int64_t updates = 0, skipped = 0;
  double first_max_abs_logr = 0;     // max |log r| in the first update (0 when r = 1 exactly)
  double kl_sum = 0, kl_tokens = 0;  // k3 KL to the reference over the loss tokens
  int64_t tokens = 0;                // rows forwarded on this rank
};

// S_k as JSON (null when there were no tokens): in the step record and in RL checkpoints.
nlohmann::json entropy_stats_json(const std::optional<EntropyStats>& s);

// Everything the record of step k is made of.
struct StepRecordInputs {
  int64_t step = 0;
  double lr = 0;
  float t_base = 1;
  int n_moe = 0;
  double train_seconds = 0, step_seconds = 0;
  int64_t train_tokens = 0;  // old-policy pass + updates, this rank
};
// The step's metrics.jsonl record ("type": "train").
nlohmann::ordered_json step_record(const StepRecordInputs& in, const RlConfig& rl, const RolloutBatch& rollout,
                                   const EntropyStage& entropy, const BatchAdvantages& adv, const OldPolicyPass& old,
                                   const UpdateTotals& upd);

}  // namespace foldmoe::rl
