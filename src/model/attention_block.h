// Self-attention block (GQA + RoPE, no biases): out = Attn(RoPE(x·Wqᵀ), RoPE(x·Wkᵀ), x·Wvᵀ)·Woᵀ.
// Letters: N rows (n = s·B + b), H hidden, A query heads, G KV heads, D head dim.
#pragma once

#include <vector>

#include "core/arena.h"
#include "model/config.h"

namespace foldmoe {

class AttentionBlock {
 public:
  AttentionBlock(const Config& cfg, int layer, ParamArena& dense);

  struct Cache {
    std::vector<float> x_NH, q_NAD, k_NGD, v_NGD, o_NAD, lse_BAS;
    std::vector<float> do_NAD, dq_NAD, dk_NGD, dv_NGD;  // backward scratch, reused across calls
  };
  // x_NH: normed input; out_NH overwritten.
  void forward(const float* x_NH, float* out_NH, int64_t S, int64_t B, const int32_t* positions_N, Cache& c) const;
  // dx_NH overwritten.
  void backward(const float* dout_NH, float* dx_NH, int64_t S, int64_t B, const int32_t* positions_N,
                Cache& c) const;

 private:
  int64_t H_, A_, G_, D_;
  double theta_;
  Param wq_, wk_, wv_, wo_;
};

}  // namespace foldmoe
