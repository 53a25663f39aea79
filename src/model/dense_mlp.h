// Dense SwiGLU MLP: y = (silu(a) ⊙ b)·fc2ᵀ with [a | b] = x·fc1ᵀ (gate rows first).
#pragma once

#include <string>
#include <vector>

#include "core/arena.h"

namespace foldmoe {

class DenseMlp {
 public:
  // Registers `<prefix>fc1` [2F, H] and `<prefix>fc2` [H, F].
  DenseMlp(const std::string& prefix, int64_t H, int64_t F, double std_in, double std_out, ParamArena& arena);

  struct Cache {
    std::vector<float> x_NH, ab_N2F, h_NF;
    std::vector<float> dh_NF, dab_N2F;  // backward scratch, reused across calls
  };
  void forward(const float* x_NH, float* y_NH, int64_t N, Cache& c) const;
  void backward(const float* dy_NH, float* dx_NH, int64_t N, Cache& c) const;  // dx overwritten

 private:
  int64_t H_, F_;
  Param fc1_, fc2_;
};

}  // namespace foldmoe
