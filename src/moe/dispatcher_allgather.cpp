#include "moe/dispatcher_allgather.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "moe/dispatcher_alltoall.h"

namespace foldmoe::moe {

AllGatherDispatcher::AllGatherDispatcher(const ProcessGroups& g, int E) : etp_ep_(g.etp_ep), E_(E) {
  W_ = etp_ep_->size();
  FOLDMOE_CHECK(E % g.ep->size() == 0, "num_experts {} not divisible by EP {}", E, g.ep->size());
  nle_ = E / g.ep->size();
  j_ = g.ep->rank();
}

void AllGatherDispatcher::dispatch_preprocess(const float* x, const uint8_t* fmap, const float* fprobs, int64_t N,
                                              int64_t H, bool pad, DispatchState& st) {
  st.N = N, st.H = H, st.E = E_, st.pad = pad;
  st.x_in = x, st.probs_in = fprobs, st.map_in = fmap;
}

void AllGatherDispatcher::dispatch_exchange(DispatchState& st) {
  const int64_t N = st.N, H = st.H, E = E_;
  if (W_ > 1) {
    float* mf = ensure(st.map_f, N * E);
    for (int64_t i = 0; i < N * E; ++i) mf[i] = float(st.map_in[i]);
    etp_ep_->all_gather(st.x_in, ensure(st.x_gath, N * W_ * H), N * H);
    etp_ep_->all_gather(st.probs_in, ensure(st.probs_gath, N * W_ * E), N * E);
    etp_ep_->all_gather(mf, ensure(st.map_gath, N * W_ * E), N * E);
    st.x_ag = st.x_gath.data(), st.p_ag = st.probs_gath.data();
  } else {
    st.x_ag = st.x_in, st.p_ag = st.probs_in;
  }
}

void AllGatherDispatcher::dispatch_postprocess(DispatchState& st) {
  const int64_t NW = st.N * W_, H = st.H, E = E_;
  auto mapped = [&](int64_t n, int64_t e) {
    return W_ > 1 ? st.map_gath[size_t(n * E + e)] != 0.0f : st.map_in[n * E + e] != 0;
  };
  st.tokens_per_local_expert.assign(size_t(nle_), 0);
  st.row_token.clear();
  st.row_expert.clear();
  for (int le = 0; le < nle_; ++le) {
    const int64_t e = int64_t(j_) * nle_ + le;
    for (int64_t n = 0; n < NW; ++n)
      if (mapped(n, e)) {
        st.row_token.push_back(int32_t(n));
        st.row_expert.push_back(int32_t(e));
        ++st.tokens_per_local_expert[size_t(le)];
      }
  }
  st.num_rows = int64_t(st.row_token.size());
  float* xs = ensure(st.x_sort, st.num_rows * H);
  float* ps = ensure(st.p_sort, st.num_rows);
  for (int64_t r = 0; r < st.num_rows; ++r) {
    const int64_t n = st.row_token[size_t(r)];
    std::memcpy(xs + r * H, st.x_ag + n * H, size_t(H) * sizeof(float));
    ps[r] = st.p_ag[n * E + st.row_expert[size_t(r)]];
  }
  st.rows = xs, st.rows_p = ps;
}

void AllGatherDispatcher::combine_preprocess(DispatchState& st, const float* out) {
  const int64_t NW = st.N * W_, H = st.H;
  float* y = ensure(st.y_full, NW * H);
  std::fill(y, y + NW * H, 0.0f);
  for (int64_t r = 0; r < st.num_rows; ++r) {
    float* d = y + int64_t(st.row_token[size_t(r)]) * H;
    const float* s = out + r * H;
    for (int64_t h = 0; h < H; ++h) d[h] += s[h];
  }
  st.y_stage = y;
}

void AllGatherDispatcher::combine_exchange(DispatchState& st) {
  if (W_ > 1) {
    etp_ep_->reduce_scatter(st.y_stage, ensure(st.y_recv, st.N * st.H), st.N * st.H);
    st.y_stage = st.y_recv.data();
  }
}

void AllGatherDispatcher::combine_postprocess(DispatchState& st, float* y) {
  std::memcpy(y, st.y_stage, size_t(st.N * st.H) * sizeof(float));
}

void AllGatherDispatcher::combine_backward(DispatchState& st, const float* dy) {
  const int64_t H = st.H;
  const float* g = dy;
  if (W_ > 1) {
    etp_ep_->all_gather(dy, ensure(st.dy_gath, st.N * W_ * H), st.N * H);
    g = st.dy_gath.data();
  }
  float* d = ensure(st.dy_sort, st.num_rows * H);
  for (int64_t r = 0; r < st.num_rows; ++r)
    std::memcpy(d + r * H, g + int64_t(st.row_token[size_t(r)]) * H, size_t(H) * sizeof(float));
  st.d_rows = d;
}

void AllGatherDispatcher::dispatch_backward(DispatchState& st, const float* drows, const float* dp, float* dx,
                                            float* dprobs) {
  const int64_t NW = st.N * W_, H = st.H, E = E_;
  float* gx = W_ > 1 ? ensure(st.dx_gath, NW * H) : dx;
  float* gp = W_ > 1 ? ensure(st.dp_gath, NW * E) : dprobs;
  std::fill(gx, gx + NW * H, 0.0f);
  std::fill(gp, gp + NW * E, 0.0f);
  for (int64_t r = 0; r < st.num_rows; ++r) {
    const int64_t n = st.row_token[size_t(r)];
    float* d = gx + n * H;
    const float* s = drows + r * H;
    for (int64_t h = 0; h < H; ++h) d[h] += s[h];
    gp[n * E + st.row_expert[size_t(r)]] += dp[r];
  }
  if (W_ > 1) {
    etp_ep_->reduce_scatter(gx, dx, st.N * H);
    etp_ep_->reduce_scatter(gp, dprobs, st.N * E);
  }
}

std::unique_ptr<TokenDispatcher> make_dispatcher(const std::string& kind, const ProcessGroups& groups, int E) {
  if (kind == "alltoall") return std::make_unique<AlltoAllDispatcher>(groups, E);
  if (kind == "allgather") return std::make_unique<AllGatherDispatcher>(groups, E);
  user_error("[moe] dispatcher = \"{}\": must be alltoall or allgather", kind);
}

}  // namespace foldmoe::moe
