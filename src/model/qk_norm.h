// QK-norm (docs/model.md "Architecture options"): RMSNorm of the q or k projection before RoPE.
// "head" (Qwen3): each head's D values, one weight [D] shared by all heads; the weight is
// TP-replicated and its gradient summed over TP like the sequence-parallel norm weights. "full"
// (OLMoE): the whole projection of all global heads, weight [heads·D] sharded with the heads; with
// TP > 1 the mean of squares (and its gradient term) is summed over the TP group.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "core/arena.h"

namespace foldmoe {

class QkNorm {
 public:
  enum class Kind { Head, Full };
  // name: "layers.N.attn.q_norm"; heads: the heads this rank holds (global_heads in the model).
  QkNorm(Kind kind, const std::string& name, int64_t heads, int64_t global_heads, int64_t D, double eps,
         ParamArena& dense, std::shared_ptr<Communicator> tp);
  struct Cache {
    std::vector<float> x, rstd, dy;
  };
  // x [N, heads·D] normalised in place (the input is kept in c for the backward).
  void forward(float* x, int64_t N, Cache& c) const;
  // d [N, heads·D]: the gradient of the output, turned into that of the input in place.
  void backward(float* d, int64_t N, Cache& c) const;

 private:
  Kind kind_;
  int64_t heads_, global_heads_, D_;
  double eps_;
  std::shared_ptr<Communicator> tp_;
  Param w_;
};

}  // namespace foldmoe
