// RMSNorm with its weight parameter and activation cache.
#pragma once

#include <string>
#include <vector>

#include "core/arena.h"

namespace foldmoe {

class RmsNormLayer {
 public:
  RmsNormLayer(const std::string& name, int64_t H, double eps, ParamArena& arena, bool sequence_parallel);
  struct Cache {
    std::vector<float> x_NH, rstd_N;
  };
  void forward(const float* x_NH, float* y_NH, int64_t N, Cache& c) const;
  // dx overwritten.
  void backward(const float* dy_NH, float* dx_NH, int64_t N, const Cache& c) const;

 private:
  int64_t H_;
  double eps_;
  Param w_;
};

}  // namespace foldmoe
