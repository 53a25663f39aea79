// Dense SwiGLU MLP: y = (silu(a) ⊙ b)·fc2ᵀ with [a | b] = x·fc1ᵀ (gate rows first),
// tensor-parallel with sequence parallelism (docs/dense-parallel.md §2.3): TP rank t holds rows
// [t·F/TP, (t+1)·F/TP) of W_gate and of W_up (paired) and the same columns of fc2; the SP input is
// gathered along the sequence and the output reduce-scattered back.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/arena.h"

namespace foldmoe {

class DenseMlp {
 public:
  // Registers `<prefix>fc1` [2F, H] and `<prefix>fc2` [H, F] (logical shapes; F/TP held here).
  DenseMlp(const std::string& prefix, int64_t H, int64_t F, double std_in, double std_out, ParamArena& arena,
           std::shared_ptr<Communicator> tp);

  struct Cache {
    std::vector<float> x_full, ab_N2F, h_NF, y_full;
    std::vector<float> dy_full, dx_full, dh_NF, dab_N2F;  // backward scratch, reused across calls
  };
  // x_loc, y_loc: [N_loc, H], N_loc = N/TP rows of this SP piece.
  void forward(const float* x_loc, float* y_loc, int64_t N_loc, Cache& c) const;
  void backward(const float* dy_loc, float* dx_loc, int64_t N_loc, Cache& c) const;  // dx overwritten

 private:
  std::shared_ptr<Communicator> tp_;
  int64_t H_, F_;  // F_: width held on this rank
  Param fc1_, fc2_;
};

}  // namespace foldmoe
