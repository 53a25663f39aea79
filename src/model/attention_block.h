// Self-attention block (GQA + RoPE): out = Attn(RoPE(norm(x·Wqᵀ + bq)), RoPE(norm(x·Wkᵀ + bk)), x·Wvᵀ + bv)·Woᵀ,
// with the optional biases, QK-norm and RoPE scaling of docs/model.md "Architecture options";
// tensor-parallel with sequence parallelism (docs/dense-parallel.md §2.3): TP rank t holds query heads
// [t·A/TP, (t+1)·A/TP) and KV heads [t·G/TP, (t+1)·G/TP); the SP-sharded input is gathered along
// the sequence, Q/K/V are column-parallel, Wo is row-parallel and reduce-scattered back.
// Letters: N rows of the CP-local sequence (n = s·B + b), N_loc = N/TP rows of this SP piece,
// H hidden, A/G local query/KV heads, D head dim.
#pragma once

#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "config/config.h"
#include "core/arena.h"
#include "model/qk_norm.h"
#include "ops/rope.h"
#include "parallel/ring_attention.h"

namespace foldmoe {

class AttentionBlock {
 public:
  // cp: the context-parallel group (null = a group of one): attention runs as ring attention over
  // it on the zig-zag chunks of this rank (docs/dense-parallel.md §4); over one rank that is plain
  // causal attention.
  AttentionBlock(const Config& cfg, int layer, ParamArena& dense, std::shared_ptr<Communicator> tp,
                 std::shared_ptr<Communicator> cp = nullptr);

  struct Cache {
    std::vector<float> x_full, q_NAD, k_NGD, v_NGD, o_NAD, lse_BAS;
    std::vector<float> out_full, dout_full, dx_full;    // SP scratch (unused with TP = 1)
    std::vector<float> do_NAD, dq_NAD, dk_NGD, dv_NGD;  // backward scratch, reused across calls
    RingAttentionWorkspace ring;                        // unused with CP = 1
    QkNorm::Cache q_norm, k_norm;                      // model.qk_norm
  };
  // x_loc: normed input [N_loc, H]; out_loc [N_loc, H] overwritten. S is the CP-local sequence
  // length (N = S·B), positions_N the positions of all N rows.
  void forward(const float* x_loc, float* out_loc, int64_t S, int64_t B, const int32_t* positions_N, Cache& c) const;
  // dx_loc overwritten.
  void backward(const float* dout_loc, float* dx_loc, int64_t S, int64_t B, const int32_t* positions_N,
                Cache& c) const;

 private:
  std::shared_ptr<Communicator> tp_, cp_;
  int64_t H_, A_, G_, D_;  // A_, G_: heads held on this rank
  ops::RopeTable rope_;
  CpCommType cp_comm_ = CpCommType::P2P;
  Param wq_, wk_, wv_, wo_;
  Param bq_, bk_, bv_;                       // model.attention_bias (invalid otherwise)
  std::unique_ptr<QkNorm> q_norm_, k_norm_;  // model.qk_norm (null for "none")
};

}  // namespace foldmoe
