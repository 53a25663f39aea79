// The decoder LM: embedding -> L x TransformerLayer -> RMSNorm -> untied LM head -> cross-entropy.
// Model math knows nothing of parallelism beyond the process groups it is handed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "core/arena.h"
#include "model/batch.h"
#include "model/rmsnorm_layer.h"
#include "model/transformer_layer.h"
#include "parallel/vocab_parallel.h"

namespace foldmoe {

struct MicroBatchResult {
  double ce_sum = 0;        // Σ CE over valid tokens
  int64_t n_valid = 0;
  std::vector<MoEStats> moe;  // one per MoE layer, in layer order
  std::vector<int32_t> routing_NLK;  // selected experts [N, MoE layers, k] (ascending ids), for replay
};

class Model {
 public:
  // cfg.model.vocab must be resolved (> 0). Parameters are registered, allocated and initialised
  // from cfg.train.seed.
  Model(const Config& cfg, const ProcessGroups& groups);

  ParamArena& dense() { return dense_; }
  ParamArena& expert() { return expert_; }
  const Config& config() const { return cfg_; }
  std::vector<MoELayer*> moe_layers();
  int num_moe_layers() const;

  // Forward and backward of one micro-batch. The per-token loss gradient is
  // loss_seed / n_valid (mean mode) so that gradients accumulate the step objective.
  // ctx carries step, loss_seed and mode for the MoE aux losses. logits_NV, if given, receives the
  // logits (rows n = s·B + b).
  MicroBatchResult forward_backward(const MicroBatch& mb, const MoEStepContext& ctx, std::vector<float>* logits_NV = nullptr);

  // Forward and backward under a loss on the logits that the caller computes (the RL policy loss,
  // spec 04 §2 stage 7): the same forward as forward_backward, then loss_grad(logits_NV, dlogits_NV)
  // fills dL/dlogits (dlogits_NV arrives zeroed, [N, V]), then the same backward. The returned
  // ce_sum/n_valid describe the CE of the masked targets (diagnostics only). Router replay via
  // mb.replay_NLK as in forward_backward.
  using LogitsGradFn = std::function<void(const std::vector<float>& logits_NV, std::vector<float>& dlogits_NV)>;
  MicroBatchResult forward_backward_logits(const MicroBatch& mb, const MoEStepContext& ctx, const LogitsGradFn& loss_grad);

  // Forward only (evaluation / generation): logits [N, V], no MoE counters updated.
  void forward_logits(const MicroBatch& mb, std::vector<float>& logits_NV, MicroBatchResult* result = nullptr);

  // Non-parameter state that checkpoints carry (expert-bias buffers), by global name
  // ("layers.<i>.moe.router.expert_bias"), and its restore (names not present are left alone).
  std::map<std::string, std::vector<float>> buffers();
  void set_buffers(const std::map<std::string, std::vector<float>>& buffers);

  // End of a global batch (after gradient reduction): MoE expert-bias update and accumulator reset.
  void finalize_global_batch();

 private:
  void backward_(const MicroBatch& mb, std::vector<float>& dlogits_NV);
  void forward_(const MicroBatch& mb, const MoEStepContext& ctx, std::vector<float>& logits, MicroBatchResult& r);

  Config cfg_;
  ProcessGroups groups_;
  int64_t H_, V_;
  VocabShard vocab_;  // this TP rank's rows of the (padded) vocabulary
  int tp_size_ = 1, tp_rank_ = 0;
  ParamArena dense_{ArenaKind::Dense}, expert_{ArenaKind::Expert};
  Param embedding_, head_;
  std::vector<std::unique_ptr<TransformerLayer>> layers_;
  std::unique_ptr<RmsNormLayer> final_norm_;

  // Activation caches of the in-flight micro-batch.
  std::vector<std::unique_ptr<TransformerLayer::Cache>> caches_;
  RmsNormLayer::Cache final_norm_cache_;
  std::vector<float> final_out_NH_;
  // Step buffers kept across calls: fresh multi-MB vectors each step cost page faults and zero-fill
  // (logits alone is N·V floats). Every one is fully overwritten before it is read.
  std::vector<float> x_NH_, logits_NV_, dfinal_NH_, dx_NH_;
  std::vector<float> emb_full_, final_full_, dfinal_full_, dx_full_;  // SP scratch (TP > 1)
};

}  // namespace foldmoe
