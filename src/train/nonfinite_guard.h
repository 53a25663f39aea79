// The NaN/Inf guard of the training step (docs/long-runs.md, rule C1). Detection costs nothing
// extra: the global gradient norm is computed anyway, and it is non-finite exactly when some
// gradient element is (or the sum of squares overflows). Only after a detection is every
// gradient scanned, to name the parameter.
#pragma once

#include <cstdint>
#include <string>

#include "core/arena.h"

namespace foldmoe::train {

// Index of the first element of data[0, n) that is NaN or ±Inf, or -1.
int64_t first_nonfinite(const float* data, int64_t n);

// Name of the first parameter of `arena` whose gradient holds a NaN or ±Inf ("" = none here).
std::string first_nonfinite_gradient(const ParamArena& arena);
// Name of the first parameter of `arena` whose value is NaN or ±Inf ("" = none here). Finite
// gradients can still overflow the weights (a huge learning rate with weight decay grows them
// geometrically), so the weights are checked after every update too: one pass over this rank's
// parameters, about the cost of reading them once.
std::string first_nonfinite_parameter(const ParamArena& arena);

// Counts non-finite steps against train.skip_nonfinite_steps = N: up to N in a row are skipped
// (no optimizer update); the (N+1)-th in a row stops the run. A finite step resets the run of
// skips; the total is reported in the metrics.
class NonfiniteBudget {
 public:
  explicit NonfiniteBudget(int allowed_in_a_row) : allowed_(allowed_in_a_row) {}
  // Records a non-finite step; true = skip it, false = stop.
  bool allow_skip() {
    ++in_a_row_;
    if (in_a_row_ > allowed_) return false;
    ++skipped_;
    return true;
  }
  void finite_step() { in_a_row_ = 0; }
  int64_t skipped() const { return skipped_; }
  int allowed() const { return allowed_; }

 private:
  int allowed_;
  int in_a_row_ = 0;
  int64_t skipped_ = 0;
};

}  // namespace foldmoe::train
