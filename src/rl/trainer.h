// The RL post-training loop (docs/rl.md §2): GRPO, DAPO and HAPO over one pipeline.
//
// Per RL step k (1-based):
//   1-3  prompt batch (seeded), n responses per prompt with rl::generate (ATS from S_{k-1} under
//        hapo), ±1 rewards at the last valid token, soft overlong punishment;
//   3b   (dynamic sampling) rounds of gen_prompts_per_round prompts until P groups with
//        non-identical outcomes are kept;
//   4    old log-probs and entropies: the training forward without gradient (Model::forward_logits),
//        teacher-forced over prompt + response at T_base, with router replay, over exactly the
//        micro-batches of the first mini-batch epoch, so that r = 1 bit for bit in the first update;
//   5    entropy statistics S_k (kept for the next rollout and in checkpoints) and, for DAR/AAC with
//        scope minibatch-old, h̃ per token from each mini-batch's statistics;
//   6    advantages (TLGA with GRPO fallback, or GRPO);
//   7    M mini-batch updates: Model::forward_backward_logits with the per-token policy loss pushed
//        through the LM head's log-softmax, true token mean (or the configured aggregation), global
//        gradient-norm clip (non-finite norm: the update is skipped and counted), AdamW;
//        optional terms per loss token, weighted like the policy loss: β_KL · k3 KL to the frozen
//        rl.reference model (its log-probs come from stage 4, same micro-batches and routes) and the
//        entropy bonus −entropy_coef · H(π_θ);
//   8    learning rate lr·min(1, k/W) for all updates of the step;
//   9    evaluation every eval.every steps and at the last step (and at step 0), ATS off;
//   10   checkpoints (weights, AdamW moments, RL step, prompt position, S_k).
//
// Data parallelism: the seam is the ProcessGroups. Rollouts (and evaluations) are split over DP
// ranks by prompt and then shared (rollout_split.h; the sampling stream is keyed by prompt and
// sample, not by rank); response j of each mini-batch is trained on rank j mod DP; per-token stage-4 results are summed over dp
// (zeros elsewhere, so the sum is exact); gradients are summed over dp. With EP > 1 the ranks decode
// in lock-step (empty forwards once a rank is done), so every expert collective is matched. Checkpoints are
// logical (gathered to rank 0), so an RL run resumes under any layout.
// MoE auxiliary losses are not applied during RL (their gradient seed is 0); expert-bias updates
// follow rl.router_replay.freeze_expert_bias.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "data/data_source.h"
#include "model/model.h"
#include "config/rl_section.h"
#include "rl/entropy_stats.h"
#include "rl/tasks.h"
#include "rl/step_stages.h"
#include "train/async_checkpoint.h"
#include "train/optimizer.h"
#include "train/run_loop.h"

namespace foldmoe::rl {

struct RlEvalResult {
  int64_t step = 0;
  std::map<std::string, double> accuracy;  // task -> mean over questions of the mean over samples (0..1)
  double avg = 0;                          // unweighted mean over tasks
  double mean_length = 0;                  // response tokens
};

// The configuration of an RL run: [model], [moe], [data], [optim] and [train] (except run_dir) come
// from the initial checkpoint's manifest; [rl], [parallel], [checkpoint], [log] and train.run_dir
// from `file_cfg` (the --config file with its overrides). Warns on stderr if file_cfg sets a
// different [model] or [moe].
Config rl_run_config(const Config& file_cfg, const std::string& init_checkpoint);

class RlTrainer {
 public:
  // cfg: from rl_run_config (vocab resolved). init_checkpoint: weights to start from (ignored when
  // cfg.checkpoint.load names an RL checkpoint to resume). Validates the [rl] section first.
  RlTrainer(Config cfg, const std::string& init_checkpoint, ProcessGroups groups = ProcessGroups::single_process(),
            bool write_outputs = true);

  // Runs steps until rl.steps in the run loop (train/run_loop.h): logging, evaluating and
  // checkpointing into `dir`, which was checked before this trainer was built.
  void run(const RunDirectory& dir);
  // One RL step, stage by stage (rl/step_stages.h); returns its metrics record.
  nlohmann::ordered_json step();
  // Held-out evaluation (docs/rl.md §8): samples per question, eval temperature and top-p, ATS off.
  RlEvalResult evaluate();
  void save_checkpoint(const std::string& dir, train::AsyncCheckpointWriter* async = nullptr);

  Model& model() { return *model_; }
  const Config& config() const { return cfg_; }
  const RlConfig& rl() const { return rl_; }
  int64_t rl_step() const { return step_; }
  const std::optional<EntropyStats>& ats_stats() const { return ats_.for_rollout(); }

 private:
  // The stages of step() that need the model (the others are in rl/step_stages.h).
  RolloutBatch rollout_stage(int64_t k);
  OldPolicyPass old_policy_stage(std::vector<RlSample>& batch, const MinibatchPlan& plan);
  UpdateTotals update_stage(const std::vector<RlSample>& batch, const MinibatchPlan& plan, const EntropyStage& entropy,
                            const BatchAdvantages& adv, double lr);
  std::vector<RlSample> generate_round(int64_t count, int64_t k);
  MicroBatch build_micro_batch(const std::vector<RlSample>& batch, const std::vector<int64_t>& idx,
                               bool for_update) const;
  void load_weights(const std::string& dir, bool with_state);
  std::optional<EvalOutcome> evaluation_outcome();  // evaluate() as a metrics row and a line

  Config cfg_;
  const RlConfig& rl_ = cfg_.rl;  // the [rl] section of cfg_
  ProcessGroups groups_;
  bool save_checkpoints_;  // every rank (saves are collective)
  bool write_outputs_;     // world rank 0 only: metrics, config, log lines
  std::unique_ptr<data::Tokenizer> tokenizer_;
  std::optional<int32_t> document_start_;  // what prompts start with (data::document_start_id)
  std::vector<int32_t> stop_ids_;          // ids besides eos that end a response (chat end-of-turn)
  std::unique_ptr<ProblemSource> source_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Model> ref_model_;  // frozen reference for the KL term (kl_coef > 0 only)
  std::unique_ptr<ArenaAdamW> opt_dense_, opt_expert_;
  RouterReplayMode replay_ = RouterReplayMode::Off;
  int n_moe_ = 0, topk_ = 0;
  int64_t step_ = 0;              // RL steps completed
  int64_t prompts_consumed_ = 0;  // training problems drawn so far
  int64_t opt_step_ = 0;          // AdamW updates so far (bias correction)
  int64_t skipped_total_ = 0;
  AtsStatsLag ats_;
};

// The human line of one RL step's metrics record.
std::string format_rl_step_line(const nlohmann::ordered_json& m);

}  // namespace foldmoe::rl
