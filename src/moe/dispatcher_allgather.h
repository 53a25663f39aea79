// AllGather token dispatcher (docs/moe.md §6.2): all-gather tokens, probabilities and the map over
// `etp_ep`, each rank computes its local experts' rows, scatter-adds them back and
// reduce-scatters the result. Suited to TP-only layouts, small EP or very large k.
#pragma once

#include "moe/dispatcher.h"

namespace foldmoe::moe {

class AllGatherDispatcher final : public TokenDispatcher {
 public:
  AllGatherDispatcher(const ProcessGroups& groups, int E);
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
  std::shared_ptr<Communicator> etp_ep_;
  int E_, W_, nle_, j_;
};

}  // namespace foldmoe::moe
