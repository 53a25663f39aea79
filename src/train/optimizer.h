// AdamW over a flat parameter arena (one instance per arena: dense and expert, docs/dense-parallel.md §9.4),
// plus the global gradient norm and clipping shared by both instances.
#pragma once

#include <vector>

#include "core/arena.h"
#include "config/config.h"

namespace foldmoe {

class ArenaAdamW {
 public:
  ArenaAdamW(ParamArena& arena, const OptimConfig& cfg);
  // One update with learning rate `lr`; `step` is 1-based (bias correction). The gradients are
  // used scaled by `grad_scale` (the clip coefficient) and left zeroed for the next step.
  void step(double lr, int64_t step, float grad_scale);
  std::vector<float>& m() { return m_; }
  std::vector<float>& v() { return v_; }

 private:
  ParamArena& arena_;
  OptimConfig cfg_;
  std::vector<float> m_, v_;  // same offsets as the arena
};

// sqrt(Σ g²) over every gradient of the arenas (padding is zero and adds nothing).
double grad_norm(const std::vector<ParamArena*>& arenas);
// The gradient-clipping coefficient: max_norm / (norm + 1e-6) if that is < 1, else 1 (also when
// clipping is off). ArenaAdamW::step applies it.
double clip_coefficient(double norm, double max_norm);

}  // namespace foldmoe
