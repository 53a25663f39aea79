// Learning-rate schedule: linear warm-up from lr/warmup to lr over `warmup_steps`, then cosine
// decay to min_lr at the last step, or constant.
#pragma once

#include <cstdint>

#include "config/config.h"

namespace foldmoe {

// LR for 0-based optimizer step `step` of `total_steps`.
double lr_at(const OptimConfig& o, int64_t step, int64_t total_steps);

}  // namespace foldmoe
