// Grouped SwiGLU experts (docs/moe.md §7). Rows arrive sorted by local expert with per-expert counts;
// each expert runs one GEMM per linear over its contiguous rows. The routing probability of a
// row is applied after the activation, before FC2: y = W2·(silu(a) ⊙ b · p).
// Parameters (expert arena, named by global expert id): layers.{i}.moe.experts.{e}.fc1
// [2F', H] (gate rows then up rows of this ETP shard) and .fc2 [H, F'], F' = F_moe/ETP.
// Letters: R rows, H hidden, F F' (local FFN width).
#pragma once

#include <cstdint>
#include <vector>

#include "core/arena.h"

namespace foldmoe::moe {

struct ExpertCache {
  const float* x_RH = nullptr;  // rows (owned by the dispatcher state)
  const float* p_R = nullptr;
  std::vector<int64_t> counts;  // rows per local expert
  int64_t R = 0;
  std::vector<float> ab_R2F, h_RF, hp_RF, y_RH;  // FC1 output, activation, scaled activation, output
  std::vector<float> dhp_RF, dab_R2F, dx_RH, dp_R;  // backward scratch and results
};

class Experts {
 public:
  // Registers the nle = E/EP local experts of EP rank `ep_rank`, sharded over ETP.
  Experts(int layer, int E, int H, int F, int ep_size, int ep_rank, int etp_size, int etp_rank, double init_std,
          double out_std, ParamArena& expert_arena);

  // y_RH = cache.y_RH (rows in input order).
  void forward(const float* x_RH, const float* p_R, const std::vector<int64_t>& counts, ExpertCache& c) const;
  // dy_RH -> c.dx_RH (input-row gradient, partial over ETP) and c.dp_R; weight grads accumulated.
  void backward(ExpertCache& c, const float* dy_RH) const;

  int local_experts() const { return nle_; }
  const Param& fc1(int le) const { return fc1_[size_t(le)]; }
  const Param& fc2(int le) const { return fc2_[size_t(le)]; }

 private:
  int H_, F_, nle_;
  std::vector<Param> fc1_, fc2_;
};

}  // namespace foldmoe::moe
