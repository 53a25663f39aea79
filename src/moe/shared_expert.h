// Shared expert (docs/moe.md §8): a dense SwiGLU MLP of width F_sh applied to every token,
// tensor-parallel over the attention `tp` group with sequence parallelism (all-gather the input,
// column-parallel FC1, row-parallel FC2, reduce-scatter), with an optional sigmoid gate
// g_n = sigmoid(w_sh·x_n). Dense parameters: layers.{i}.moe.shared.fc1 [2F', H],
// .fc2 [H, F'] (F' = F_sh/TP), layers.{i}.moe.shared_gate.weight [1, H] (SP-flagged).
// Letters: N local tokens, H hidden, F F'.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/arena.h"

namespace foldmoe::moe {

struct SharedCache {
  const float* x_NH = nullptr;
  const float* x_in = nullptr;  // the SP-gathered input: x_full, or x_NH itself with one TP rank
  int64_t N = 0;
  std::vector<float> x_full, ab, h, y_full, y_loc, gate;  // gate [N]: sigmoid values
  std::vector<float> dy_loc, dy_full, dh, dab, dx_full;
};

class SharedExpert {
 public:
  SharedExpert(int layer, int H, int F, bool gate, std::shared_ptr<Communicator> tp, double init_std, double out_std,
               ParamArena& dense);
  // y_NH += shared(x).
  void forward(const float* x_NH, int64_t N, float* y_NH, SharedCache& c) const;
  // dx_NH += input gradient; weight grads accumulated.
  void backward(SharedCache& c, const float* dy_NH, float* dx_NH) const;

 private:
  int H_, F_;
  bool gate_;
  std::shared_ptr<Communicator> tp_;
  Param fc1_, fc2_, gate_w_;
};

}  // namespace foldmoe::moe
