// Token dispatchers (docs/moe.md §6): the phased interface shared by AllGather and AlltoAll.
// dispatch: preprocess (metadata, permutation) -> exchange -> postprocess (rows grouped by local
// expert); combine is the exact mirror, consuming the metadata of dispatch. Backward runs the
// conjugate of every phase in reverse. Routing probabilities travel with the rows (docs/moe.md §6.4).
// Letters: N local tokens, E experts, H hidden, R rows handed to the experts.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_groups.h"

namespace foldmoe::moe {

// Grows v to at least n elements (never shrinks, so buffers are reused across micro-batches).
template <typename T>
T* ensure(std::vector<T>& v, int64_t n) {
  if (v.size() < size_t(n)) v.resize(size_t(n));
  return v.data();
}

// Metadata and buffers of one dispatch, kept in the layer's activation cache (the combine's and the
// backward's buffers only while those run: MoELayer lends them from one set per thread).
struct DispatchState {
  int64_t N = 0, H = 0, E = 0;
  bool pad = false;  // drop-and-pad: static splits, no count exchange

  // Metadata (docs/moe.md §6.3; AllGather uses the row lists and tokens_per_local_expert only).
  std::vector<int32_t> row_token;    // permutation-1 rows: source token (AllGather: gathered row)
  std::vector<int32_t> row_expert;   // permutation-1 rows: global expert (AllGather: global expert)
  std::vector<int64_t> input_splits, output_splits, output_splits_tp;  // rows
  std::vector<int64_t> chunk_sizes;  // [ETP·EP·nle] in (t', j', le) order
  std::vector<int64_t> tokens_per_local_expert;
  int64_t num_out = 0, num_recv = 0, num_rows = 0;

  // Buffers. The *_p buffers carry the routing probability of each row.
  std::vector<float> x_perm, p_perm, x_recv, p_recv, x_gath, p_gath, x_sort, p_sort;
  std::vector<float> y_gath, y_recv, y_perm, y_full;
  std::vector<float> dy_perm, dy_recv, dy_gath, dy_sort;
  std::vector<float> dx_gath, dp_gath, dx_recv, dp_recv, dx_perm, dp_perm;
  std::vector<float> map_f, map_gath, probs_gath, dprobs_full;

  // Results of dispatch_postprocess: rows grouped by local expert and their probabilities.
  const float* rows = nullptr;
  const float* rows_p = nullptr;
  // Current stage of a phased pipeline (aliases of the buffers above when a step is a no-op).
  const float* x_a2a = nullptr;
  const float* p_a2a = nullptr;
  const float* x_ag = nullptr;
  const float* p_ag = nullptr;
  const float* y_stage = nullptr;
  const float* x_in = nullptr;
  const float* probs_in = nullptr;
  const uint8_t* map_in = nullptr;
  // Results of the backward of combine (input of the expert backward).
  const float* d_rows = nullptr;
};

class TokenDispatcher {
 public:
  virtual ~TokenDispatcher() = default;
  // x_NH, final_map_NE, final_probs_NE must stay alive until dispatch_postprocess returns.
  virtual void dispatch_preprocess(const float* x_NH, const uint8_t* final_map_NE, const float* final_probs_NE,
                                   int64_t N, int64_t H, bool pad, DispatchState& st) = 0;
  virtual void dispatch_exchange(DispatchState& st) = 0;
  virtual void dispatch_postprocess(DispatchState& st) = 0;  // -> st.rows, st.rows_p, tokens_per_local_expert
  virtual void combine_preprocess(DispatchState& st, const float* expert_out_RH) = 0;
  virtual void combine_exchange(DispatchState& st) = 0;
  virtual void combine_postprocess(DispatchState& st, float* y_NH) = 0;

  // Backward of combine: dy_NH -> st.d_rows (gradient of the expert output rows).
  virtual void combine_backward(DispatchState& st, const float* dy_NH) = 0;
  // Backward of dispatch: gradients of the expert input rows and of their probabilities ->
  // dx_NH (overwritten) and dprobs_NE (overwritten; nonzero only on dispatched pairs).
  virtual void dispatch_backward(DispatchState& st, const float* d_rows_RH, const float* d_rows_p, float* dx_NH,
                                 float* dprobs_NE) = 0;
};

// `dispatcher` = "alltoall" | "allgather" (MoEConfig::dispatcher).
std::unique_ptr<TokenDispatcher> make_dispatcher(const std::string& kind, const ProcessGroups& groups, int E);

}  // namespace foldmoe::moe
