#include "train/nonfinite_guard.h"

#include <cmath>

namespace foldmoe::train {

int64_t first_nonfinite(const float* data, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i])) return i;
  return -1;
}

std::string first_nonfinite_gradient(const ParamArena& arena) {
  if (!arena.allocated()) return "";
  for (int i = 0; i < arena.size(); ++i)
    if (first_nonfinite(arena.grads() + arena.offset(i), shape_numel(arena.spec(i).shape)) >= 0)
      return arena.spec(i).name;
  return "";
}

std::string first_nonfinite_parameter(const ParamArena& arena) {
  if (!arena.allocated()) return "";
  for (int i = 0; i < arena.size(); ++i)
    if (first_nonfinite(arena.params() + arena.offset(i), shape_numel(arena.spec(i).shape)) >= 0)
      return arena.spec(i).name;
  return "";
}

}  // namespace foldmoe::train
