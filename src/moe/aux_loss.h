// Load-balancing losses and z-loss (docs/moe.md §4) with their gradient injection (§5).
// Each piece is a function of this rank's logits only (counts and token totals are constants),
// so its gradient is computed in the forward and added to the router's logit gradient in the
// backward. Reductions run over the groups of docs/moe.md §4: `tp_cp` (aux, seq-aux, z) and `tp_dp_cp`
// (global aux); with one process they are groups of one.
// Letters: N local tokens, E experts, B sequences of the micro-batch (row n = s·B + b).
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"
#include "config/config.h"

namespace foldmoe::moe {

struct AuxOptions {
  int E = 0, k = 0;
  bool sigmoid = false;
  // Coefficients; a type is active when its flag is set (a zero coefficient still logs).
  bool aux = false, seq = false, global = false, z = false;
  double alpha_aux = 0, alpha_seq = 0, alpha_global = 0, alpha_z = 0;

  static AuxOptions from(const MoEConfig& m);
  bool any() const { return aux || seq || global || z; }
};

// Per-layer state of global_aux_loss (docs/moe.md §4.5): running counts over the global batch.
struct GlobalAuxState {
  std::vector<double> acc;  // [E]
  int64_t steps = 0;
  void reset() {
    std::fill(acc.begin(), acc.end(), 0.0);
    steps = 0;
  }
};

// Logged values (sum of the pieces over the statistic's group, ÷ coefficient).
struct AuxValues {
  double aux = 0, seq = 0, global = 0, z = 0;
};

// What the forward needs about the micro-batch.
struct AuxBatch {
  int64_t N = 0, S_loc = 0, B = 0;
  int64_t S_full = 0;                // T_b without a mask (0: S_loc · |tp_cp|)
  const uint8_t* valid_N = nullptr;  // nullptr = all valid
  double sigma = 1.0;                // loss seed σ
  bool per_token = false;
  int dp_size = 1;                   // κ of global aux in mean mode
  // Router replay: rows whose first id is >= 0 count their k recorded experts instead of the aux
  // map's top-k (docs/rl.md §12.2 rule 6); the differentiable scores stay the live ones.
  const int32_t* replay_NK = nullptr;
  int64_t replay_stride = 0;
};

// Scratch buffers reused between calls.
struct AuxWorkspace {
  std::vector<float> a_NE, s_NE;  // aux scores; raw sigmoid scores (sigmoid only)
  std::vector<double> gamma_NE;   // ∂(weighted pieces)/∂a
  std::vector<double> red;        // reduction buffer
  std::vector<int> idx;
};

// Aux scores a (softmax, or sigmoid normalised over E) and the aux map TopK(a, k) (docs/moe.md §4.1), as
// counts per token row: map bits written to map_NE. Padded tokens get a = 0 and no map entries.
void aux_scores(const AuxOptions& o, const float* logits_NE, int64_t N, const uint8_t* valid_N, float* a_NE,
                float* s_NE, uint8_t* map_NE, int* idx_scratch);

// Computes every active piece, their logged values, and adds σ·κ·∂L_r/∂ℓ into dlogits_NE.
void aux_losses_forward(const AuxOptions& o, const float* logits_NE, const AuxBatch& b, Communicator& tp_cp,
                        Communicator& tp_dp_cp, GlobalAuxState& gstate, AuxWorkspace& ws, std::vector<uint8_t>& map_ws,
                        float* dlogits_NE, AuxValues* logged);

}  // namespace foldmoe::moe
