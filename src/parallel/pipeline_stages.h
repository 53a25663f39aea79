// Pipeline-parallel layer assignment (docs/pipeline.md §6.1, docs/topology.md §5 rule L12).
//
// A pipeline of `pp` stages with `vpp` virtual chunks per stage has pp·vpp virtual stages; chunk c
// of stage r is virtual stage c·pp + r. Each virtual stage owns a contiguous run of global layer
// indices; runs follow virtual-stage order and cover [0, L) exactly once. Layer indices stay global
// (for `[moe] layer_freq`, parameter names and init). The embedding lives on chunk 0 of stage 0,
// the final norm, head and loss on chunk vpp−1 of stage pp−1.
#pragma once

#include <vector>

namespace foldmoe {

class PipelineLayout {
 public:
  // Even split: virtual stage s owns layers [s·L/(pp·vpp), (s+1)·L/(pp·vpp)). With vpp = 1 stage r
  // owns [r·L/pp, (r+1)·L/pp); with vpp > 1 chunk c of stage r owns the L/(pp·vpp) layers starting
  // at c·(L/vpp) + r·L/(pp·vpp). Throws UserError (rule L12) when the split is impossible.
  static PipelineLayout even(int layers, int pp, int vpp = 1);
  // Explicit (possibly uneven) split: counts[s] layers for virtual stage s (s = c·pp + r), so
  // counts has pp·vpp entries (pp entries when vpp = 1), each ≥ 1, summing to `layers`.
  // Throws UserError (rule L12) listing every violation.
  static PipelineLayout explicit_counts(int layers, int pp, const std::vector<int>& counts, int vpp = 1);

  // explicit_counts when counts is non-empty ([parallel] pipeline_layers), even otherwise. The
  // split is checked by config/layout_rules.h pipeline_split_rules, the rule config validation uses.
  static PipelineLayout of(int layers, int pp, int vpp, const std::vector<int>& counts);

  int pp() const { return pp_; }
  int vpp() const { return vpp_; }
  int num_layers() const { return layers_; }
  int virtual_stage(int stage, int chunk) const { return chunk * pp_ + stage; }

  // Global layer indices of (stage, chunk), ascending and contiguous.
  const std::vector<int>& layers_of(int stage, int chunk = 0) const;
  // Every layer of the stage, chunk by chunk (ascending).
  std::vector<int> stage_layers(int stage) const;
  int stage_of_layer(int layer) const;
  int chunk_of_layer(int layer) const;

  bool has_embedding(int stage, int chunk = 0) const { return stage == 0 && chunk == 0; }
  bool has_head(int stage, int chunk) const { return stage == pp_ - 1 && chunk == vpp_ - 1; }
  // Whether any chunk of the stage holds the embedding / the head and loss.
  bool stage_has_embedding(int stage) const { return stage == 0; }
  bool stage_has_head(int stage) const { return stage == pp_ - 1; }

 private:
  PipelineLayout(int layers, int pp, int vpp, const std::vector<int>& counts);
  int layers_ = 0, pp_ = 1, vpp_ = 1;
  std::vector<std::vector<int>> by_vstage_;  // [virtual stage] -> global layers
  std::vector<int> vstage_of_layer_;
};

}  // namespace foldmoe
