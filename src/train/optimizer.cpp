#include "train/optimizer.h"

#include <cmath>

#include "ops/adamw.h"

namespace foldmoe {

ArenaAdamW::ArenaAdamW(ParamArena& arena, const OptimConfig& cfg)
    : arena_(arena), cfg_(cfg), m_(size_t(arena.total()), 0.0f), v_(size_t(arena.total()), 0.0f) {}

void ArenaAdamW::step(double lr, int64_t step, float grad_scale) {
  for (int i = 0; i < arena_.size(); ++i) {
    const ParamSpec& s = arena_.spec(i);
    const int64_t off = arena_.offset(i), n = shape_numel(s.shape);
    const ops::AdamWHyper h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, s.weight_decay ? cfg_.weight_decay : 0.0, step};
    ops::adamw_step_consume(arena_.params() + off, arena_.grads() + off, m_.data() + off, v_.data() + off, n, h,
                            grad_scale);
  }
  // Padding between parameters (if any) holds zero gradients already: nothing else to clear.
}

double grad_norm(const std::vector<ParamArena*>& arenas) {
  double s = 0;
  for (ParamArena* a : arenas) s += ops::sum_squares(a->grads(), a->total());
  return std::sqrt(s);
}

double clip_coefficient(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  const double coef = max_norm / (norm + 1e-6);
  return coef >= 1.0 ? 1.0 : coef;
}

}  // namespace foldmoe
