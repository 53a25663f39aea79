// The MoE block (docs/moe.md §1): y = combine(experts(dispatch(x, router(x)))) + shared(x).
// The pre-norm and residual add live outside, in the transformer layer.
// Letters: N local tokens (row n = s·B + b), H hidden, E experts.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/process_groups.h"
#include "core/arena.h"
#include "config/config.h"

namespace foldmoe {

// What the MoE block needs to know about the current micro-batch.
struct MoEStepContext {
  bool training = true;
  int64_t step = 0;       // optimizer step (keys the input-jitter RNG)
  int64_t S_loc = 0;      // local positions; N = S_loc · B
  int64_t B = 0;          // sequences in the micro-batch
  int64_t S_full = 0;     // full sequence length (seq-aux T_b without a mask)
  const uint8_t* valid_N = nullptr;      // padding mask [N] (1 = valid) or nullptr = all valid
  const int64_t* global_seq_B = nullptr; // global sequence index of each of the B sequences (jitter key)
  const int32_t* positions_N = nullptr;  // global position of each row (jitter key)
  double loss_seed = 1.0;  // σ of docs/moe.md §5.2 (mean mode: CP / M)
  bool per_token_loss = false;
  int dp_size = 1;         // for κ of global aux (docs/moe.md §4.5)
  // Optional per-row tags (e.g. the synthetic task of each token) for load metrics by tag:
  // rows with tag >= num_tags are not counted.
  const uint8_t* tag_N = nullptr;
  int num_tags = 0;
  // Router replay (docs/rl.md §12): if set, row n uses the k global expert ids at
  // replay_experts_NK[n·replay_stride ..+k) as its selection instead of its own top-k; combine
  // weights still come from the current router logits (gradient flows to the router). A row whose
  // first id is negative is routed live. Requires a dropless layer (no capacity factor).
  const int32_t* replay_experts_NK = nullptr;
  // If set, receives the k selected expert ids of each row (ascending), same layout as replay.
  int32_t* record_experts_NK = nullptr;
  int64_t replay_stride = 0;  // elements between rows of replay/record; 0 = k
  // Recomputation forward (train.recompute): the same micro-batch's forward again, in backward.
  // It reuses the aux/z-loss gradients of the first forward (the global-aux accumulators have
  // moved on since) and updates no counters, statistics or records, so they count once.
  bool recompute = false;
};

// What one forward of the block reports (logged values of docs/moe.md §4.9 and §3.6).
struct MoEStats {
  double aux_loss = 0, seq_aux_loss = 0, global_aux_loss = 0, z_loss = 0;  // logged (÷ coefficient)
  std::vector<int64_t> routed_E;  // demand per expert (before capacity), local tokens
  std::vector<int64_t> kept_E;    // after capacity
  std::vector<int64_t> routed_tag_E;  // [num_tags, E] demand by row tag (empty without tags)
  // Router replay (docs/rl.md §12.3): rows that used a recorded selection, and per row whether the
  // live top-k (computed, unused) differs from it. Empty without replay.
  int64_t replayed_rows = 0, flipped_rows = 0;
  std::vector<uint8_t> flipped_N;
};

class MoELayer {
 public:
  // Registers router, expert (in the expert arena) and shared-expert parameters under
  // "layers.<layer>.moe.*" (names in docs/model.md).
  MoELayer(const Config& cfg, int layer, ParamArena& dense, ParamArena& expert, const ProcessGroups& groups);
  ~MoELayer();
  MoELayer(const MoELayer&) = delete;
  MoELayer& operator=(const MoELayer&) = delete;

  // Activation cache of one micro-batch (opaque; one per in-flight micro-batch).
  struct Cache;
  std::unique_ptr<Cache> make_cache() const;

  // x_NH: block input (after the pre-norm); y_NH overwritten.
  void forward(const float* x_NH, float* y_NH, int64_t N, const MoEStepContext& ctx, Cache& cache, MoEStats* stats);
  // dx_NH overwritten; parameter gradients accumulated into the arenas. Re-runs the forward first
  // when release_activations dropped it (train.recompute = moe).
  void backward(Cache& cache, const float* dy_NH, float* dx_NH);
  // Frees the activations of a finished forward, keeping its aux-loss gradients (and, with
  // keep_input, its input and context, so backward can recompute the rest by itself).
  void release_activations(Cache& cache, bool keep_input) const;
  // Bytes the cache holds now (activation-memory accounting).
  static size_t cache_bytes(const Cache& cache);
  // Once per global batch after gradient synchronisation (docs/dense-parallel.md §10 step 4):
  // expert-bias update from the accumulated counts, reset of global-aux accumulators.
  void finalize_global_batch();

  // Buffers that checkpoints save (expert_bias [E]); empty when unused.
  std::vector<float>& expert_bias();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foldmoe

// MoELayer::Cache is opaque (defined in moe_layer.cpp); its deleter is defined there too, so that
// callers can own a std::unique_ptr<MoELayer::Cache> without seeing the definition.
template <>
struct std::default_delete<foldmoe::MoELayer::Cache> {
  void operator()(foldmoe::MoELayer::Cache* p) const;
};
