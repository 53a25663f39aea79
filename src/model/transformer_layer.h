// One decoder layer: h = x + Attn(Norm(x)); y = h + Mlp(Norm(h)), Mlp dense SwiGLU or MoE.
#pragma once

#include <memory>
#include <vector>

#include "comm/process_groups.h"
#include "model/attention_block.h"
#include "model/dense_mlp.h"
#include "model/rmsnorm_layer.h"
#include "moe/moe_layer.h"

namespace foldmoe {

class TransformerLayer {
 public:
  TransformerLayer(const Config& cfg, int layer, ParamArena& dense, ParamArena& expert, const ProcessGroups& groups);

  struct Cache {
    RmsNormLayer::Cache attn_norm, mlp_norm;
    AttentionBlock::Cache attn;
    DenseMlp::Cache mlp;
    std::unique_ptr<MoELayer::Cache> moe;
    // Scratch for the normed input / branch output (forward) and their gradients (backward): held
    // here so each call reuses warm pages instead of faulting in fresh N·H vectors.
    std::vector<float> work_a_NH, work_b_NH;
  };
  std::unique_ptr<Cache> make_cache() const;

  // x_NH: this rank's SP piece [S·B/TP, H] of the residual stream, updated in place to the layer
  // output. S is the CP-local sequence length; positions_N covers all S·B rows.
  void forward(std::vector<float>& x_NH, int64_t S, int64_t B, const int32_t* positions_N, const MoEStepContext& ctx,
               Cache& c, MoEStats* stats);
  // dx_NH: gradient w.r.t. the layer output on entry, w.r.t. its input on exit.
  void backward(std::vector<float>& dx_NH, int64_t S, int64_t B, const int32_t* positions_N, Cache& c);

  // Frees the activations a finished forward cached (train.recompute): moe_only drops the MoE
  // block's (its backward re-runs it from the kept input); otherwise everything is dropped and the
  // caller re-runs this layer's forward (with ctx.recompute) before its backward.
  void release_activations(Cache& c, bool moe_only) const;
  // Bytes the cache holds now (activation-memory accounting).
  static size_t cache_bytes(const Cache& c);

  bool is_moe() const { return moe_ != nullptr; }
  MoELayer* moe() { return moe_.get(); }

 private:
  int64_t H_;
  int tp_size_;
  RmsNormLayer attn_norm_, mlp_norm_;
  AttentionBlock attn_;
  std::unique_ptr<DenseMlp> mlp_;
  std::unique_ptr<MoELayer> moe_;
};

}  // namespace foldmoe
