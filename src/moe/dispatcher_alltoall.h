// AlltoAll token dispatcher (docs/moe.md §6.3, the paper's dispatcher): permutation 1 by expert,
// all-to-all-v over `ep`, all-gather-v over `etp`, permutation 2 to local-expert-major order;
// combine mirrors it. Drop-and-pad mode uses static splits (no count exchange).
#pragma once

#include "moe/dispatcher.h"

namespace foldmoe::moe {

class AlltoAllDispatcher final : public TokenDispatcher {
 public:
  AlltoAllDispatcher(const ProcessGroups& groups, int E);
  void dispatch_preprocess(const float* x_NH, const uint8_t* final_map_NE, const float* final_probs_NE, int64_t N,
                           int64_t H, bool pad, DispatchState& st) override;
  void dispatch_exchange(DispatchState& st) override;
  void dispatch_postprocess(DispatchState& st) override;
  void combine_preprocess(DispatchState& st, const float* expert_out_RH) override;
  void combine_exchange(DispatchState& st) override;
  void combine_postprocess(DispatchState& st, float* y_NH) override;
  void combine_backward(DispatchState& st, const float* dy_NH) override;
  void dispatch_backward(DispatchState& st, const float* d_rows_RH, const float* d_rows_p, float* dx_NH,
                         float* dprobs_NE) override;

 private:
  std::shared_ptr<Communicator> ep_, etp_, etp_ep_;
  int E_, EP_, ETP_, nle_, j_, t_;
  bool permute2() const { return nle_ > 1 && EP_ * ETP_ > 1; }
};

// Cuts `src` into chunks of `sizes` (listed in (w, le) order, W·nle chunks, rows of `width`
// floats) and writes them in (le, w) order (to_expert_major) or the inverse.
void permute_chunks(const float* src, float* dst, const std::vector<int64_t>& sizes, int W, int nle, int64_t width,
                    bool to_expert_major);

}  // namespace foldmoe::moe
