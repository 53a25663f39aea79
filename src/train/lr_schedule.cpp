#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace foldmoe {

double lr_at(const OptimConfig& o, int64_t step, int64_t total_steps) {
  if (o.warmup_steps > 0 && step < o.warmup_steps) return o.lr * double(step + 1) / double(o.warmup_steps);
  if (o.schedule == "constant") return o.lr;
  const int64_t decay = std::max<int64_t>(1, total_steps - o.warmup_steps - 1);
  const double progress = std::clamp(double(step - o.warmup_steps) / double(decay), 0.0, 1.0);
  return o.min_lr + 0.5 * (o.lr - o.min_lr) * (1.0 + std::cos(M_PI * progress));
}

}  // namespace foldmoe
