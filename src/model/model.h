// The decoder LM: embedding -> L x TransformerLayer -> RMSNorm -> LM head (tied or not) -> cross-entropy.
// Model math knows nothing of parallelism beyond the process groups it is handed.
//
// With pipeline parallelism (docs/pipeline.md §6) a rank builds only its stage's layers (its chunks, when
// virtual stages are used); the embedding lives on stage 0, the final norm, head and loss on the
// last stage. The stage API below runs one (micro-batch, chunk) at a time; each in-flight pair
// owns an activation slot from its forward until its backward (and the send of its input
// gradient) is done, so only the activations the schedule needs are alive. One process is the
// one-stage case of the same code.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "comm/process_groups.h"
#include "core/arena.h"
#include "model/batch.h"
#include "model/rmsnorm_layer.h"
#include "model/transformer_layer.h"
#include "ops/matmul_precision.h"
#include "parallel/pipeline_stages.h"
#include "parallel/vocab_parallel.h"

namespace foldmoe {

struct MicroBatchResult {
  double ce_sum = 0;        // Σ CE over valid tokens
  int64_t n_valid = 0;
  std::vector<MoEStats> moe;  // one per MoE layer, in layer order
  std::vector<int32_t> routing_NLK;  // selected experts [N, MoE layers, k] (ascending ids), for replay
};

// What the forward of one pipeline chunk reports.
struct ChunkResult {
  bool has_loss = false;  // the chunk holds the head: ce_sum / n_valid are set
  double ce_sum = 0;
  int64_t n_valid = 0;
  std::vector<std::pair<int, MoEStats>> moe;  // (model-wide MoE layer index, stats) per MoE layer of the chunk
  int micro_batch = -1;                       // m of the forward
  // Head chunk, when set_head_capture asked for them (foldmoe logprobs, docs/logprobs.md):
  std::vector<float> logprob_N;  // log p(target of row n) = −CE of row n (identical on the TP ranks)
  std::vector<float> logits_NV;  // this TP rank's vocabulary columns [N, vocab_rows] of the logits
  int64_t vocab_first = 0;       // global id of column 0 of logits_NV
  int64_t vocab_rows = 0;        // columns per row of logits_NV
  int64_t vocab_valid = 0;       // of them, those < V (the rest is TP padding)
};

// What the head chunk's forward hands back beside the loss (ChunkResult).
struct HeadCapture {
  bool logprobs = false;
  bool logits = false;
};

class Model {
 public:
  // cfg.model.vocab must be resolved (> 0). Parameters are registered, allocated and initialised
  // from cfg.train.seed.
  Model(const Config& cfg, const ProcessGroups& groups);
  ~Model();

  ParamArena& dense() { return dense_; }
  ParamArena& expert() { return expert_; }
  const Config& config() const { return cfg_; }
  // The MoE layers this rank holds (all of them without pipeline parallelism), in layer order.
  std::vector<MoELayer*> moe_layers();
  // MoE layers of the whole model (every stage).
  int num_moe_layers() const { return num_moe_global_; }

  // Forward and backward of one micro-batch (one pipeline stage only). The per-token loss gradient
  // is loss_seed / n_valid (mean mode) so that gradients accumulate the step objective.
  // ctx carries step, loss_seed and mode for the MoE aux losses. logits_NV, if given, receives the
  // logits (rows n = s·B + b).
  MicroBatchResult forward_backward(const MicroBatch& mb, const MoEStepContext& ctx, std::vector<float>* logits_NV = nullptr);

  // Forward and backward under a loss on the logits that the caller computes (the RL policy loss,
  // docs/rl.md §2 stage 7): the same forward as forward_backward, then loss_grad(logits_NV, dlogits_NV)
  // fills dL/dlogits (dlogits_NV arrives zeroed, [N, V]), then the same backward. The returned
  // ce_sum/n_valid describe the CE of the masked targets (diagnostics only). Router replay via
  // mb.replay_NLK as in forward_backward.
  using LogitsGradFn = std::function<void(const std::vector<float>& logits_NV, std::vector<float>& dlogits_NV)>;
  MicroBatchResult forward_backward_logits(const MicroBatch& mb, const MoEStepContext& ctx, const LogitsGradFn& loss_grad);

  // Forward only (evaluation / generation): logits [N, V], no MoE counters updated.
  void forward_logits(const MicroBatch& mb, std::vector<float>& logits_NV, MicroBatchResult* result = nullptr);

  // ---- Pipeline stage API (docs/pipeline.md §6); (m, c) = (micro-batch, local chunk). -----------------
  const PipelineLayout& pipeline() const { return layout_; }
  int pipeline_stage() const { return stage_; }
  // Rows of this rank's activation piece of mb ([S·B/TP, H] floats per message).
  int64_t activation_rows(const MicroBatch& mb) const { return mb.N() / tp_size_; }
  // Receive target for the input activation of (m, c) (not chunk 0 of stage 0).
  std::span<float> stage_input(int m, int c, const MicroBatch& mb);
  // Send source: the output activation of (m, c) after its forward.
  std::span<const float> stage_output(int m, int c);
  // Receive target for the gradient of the output of (m, c) (not the head chunk).
  std::span<float> stage_output_grad(int m, int c);
  // Send source: the gradient of the input of (m, c) after its backward.
  std::span<const float> stage_input_grad(int m, int c);
  // Forward of (m, c): chunk 0 of stage 0 embeds mb.ids_N; the head chunk computes the loss with
  // ctx.loss_seed and seeds its backward. mb (and what ctx points into) must stay alive until
  // the backward of (m, c).
  ChunkResult stage_forward(int m, int c, const MicroBatch& mb, const MoEStepContext& ctx);
  // Backward of (m, c). Its activation slot is freed here; only the input gradient waits for its
  // send (stage_input_grad) until release().
  void stage_backward(int m, int c, const MicroBatch& mb);
  // Frees the input gradient of (m, c) once it was sent.
  void release(int m, int c);
  // Runs this stage's schedule of one step (docs/pipeline.md §6.3–6.4; one stage: F0 B0 F1 B1 ...) over
  // the `pp` group: micro-batch m is mbs[m] with context ctxs[m]; on_forward sees each chunk's
  // result. Activations and their gradients travel to the neighbouring stages.
  void run_pipeline(const std::vector<MicroBatch>& mbs, const std::vector<MoEStepContext>& ctxs,
                    const std::function<void(const ChunkResult&)>& on_forward);
  // The forward half of run_pipeline (validation): the same schedule's forwards and activation
  // transfers, no backward, no gradients touched. Use ctxs with training = false (no aux-loss
  // gradients, no expert-bias counts, no jitter).
  void run_pipeline_forward(const std::vector<MicroBatch>& mbs, const std::vector<MoEStepContext>& ctxs,
                            const std::function<void(const ChunkResult&)>& on_forward);
  // Per-row log-probs and/or logits of the head chunk in every later ChunkResult.
  void set_head_capture(HeadCapture c) { capture_ = c; }
  // Activation slots alive now and the most alive at once since the last reset (memory check).
  int live_slots() const { return int(live_.size() + pending_grads_.size()); }
  int peak_live_slots() const { return peak_live_; }
  // Bytes held by the live slots (activations, caches, pending gradients) now, and the most seen
  // right after a forward since the last reset.
  size_t live_activation_bytes() const;
  size_t peak_activation_bytes() const { return peak_bytes_; }
  void track_activation_bytes(bool on) {
    track_bytes_ = on;
    peak_bytes_ = live_activation_bytes();
  }

  // Non-parameter state that checkpoints carry (expert-bias buffers), by global name
  // ("layers.<i>.moe.router.expert_bias"), and its restore (names not present are left alone).
  // Only this stage's layers; Trainer gathers them over the pipeline.
  std::map<std::string, std::vector<float>> buffers();
  void set_buffers(const std::map<std::string, std::vector<float>>& buffers);

  // Tied embeddings with PP > 1: sums the gradients of the first stage's embedding and the last
  // stage's copy over the embedding group. Call after the last backward of a step, before the
  // data-parallel reduction; a no-op otherwise.
  void reduce_tied_embedding_grads();

  // End of a global batch (after gradient reduction): MoE expert-bias update and accumulator reset.
  void finalize_global_batch();

 private:
  struct Slot;
  struct LocalLayer {
    int global = 0;      // layer index in the whole model
    int moe_index = -1;  // model-wide MoE layer index, -1 for a dense layer
    std::unique_ptr<TransformerLayer> layer;
  };
  Slot& slot_(int m, int c, const MicroBatch* mb);
  Slot& live_slot_(int m, int c, const char* what);
  void free_slot_(int m, int c);
  void embed_(const MicroBatch& mb, Slot& s);
  void layers_forward_(int c, const MicroBatch& mb, const MoEStepContext& ctx, Slot& s, ChunkResult* r,
                       std::vector<int32_t>* routing_NLK);
  void head_forward_(Slot& s);  // final norm + logits into s.logits
  // Mean-mode / per-token CE loss on s.logits, turned into dL/dlogits in place.
  void loss_(const MicroBatch& mb, const MoEStepContext& ctx, Slot& s, ChunkResult& r);
  void head_backward_(Slot& s);  // s.logits holds dL/dlogits; writes s.dx
  void layers_backward_(int c, const MicroBatch& mb, Slot& s);
  void embed_backward_(const MicroBatch& mb, Slot& s);
  MoEStepContext full_context_(const MicroBatch& mb, const MoEStepContext& ctx) const;
  // One stage holding the whole model: embedding, layers and head of mb into a slot, and back.
  Slot& whole_forward_(const MicroBatch& mb, const MoEStepContext& ctx, ChunkResult& cr, MicroBatchResult& r);
  void whole_backward_(const MicroBatch& mb, Slot& s, ChunkResult& cr, MicroBatchResult& r);

  Config cfg_;
  ProcessGroups groups_;
  int64_t H_, V_;
  VocabShard vocab_;  // this TP rank's rows of the (padded) vocabulary
  int tp_size_ = 1, tp_rank_ = 0;
  PipelineLayout layout_;
  int stage_ = 0, num_moe_global_ = 0;
  enum class Recompute { None, Moe, Full } recompute_ = Recompute::None;
  // The matrix products' precision (train.precision), set for every forward and backward it runs.
  ops::MatmulPrecision precision_ = ops::MatmulPrecision::F32;
  ParamArena dense_{ArenaKind::Dense}, expert_{ArenaKind::Expert};
  Param embedding_, head_;  // embedding on stage 0, head on the last stage
  std::vector<std::vector<LocalLayer>> chunks_;  // [local chunk] -> its layers
  std::unique_ptr<RmsNormLayer> final_norm_;     // last stage

  // Activation slots: live ones by (m, c); finished ones are kept per chunk for reuse, so that
  // steady-state steps touch warm pages instead of faulting in fresh multi-MB buffers.
  std::map<std::pair<int, int>, std::unique_ptr<Slot>> live_;
  std::vector<std::vector<std::unique_ptr<Slot>>> free_;
  // Input gradients waiting for their send, and spare buffers for them.
  std::map<std::pair<int, int>, std::vector<float>> pending_grads_;
  std::vector<std::vector<float>> spare_grads_;
  int peak_live_ = 0;
  size_t peak_bytes_ = 0;
  bool track_bytes_ = false;  // walking every cache costs time: only when asked
  HeadCapture capture_;
};

}  // namespace foldmoe
