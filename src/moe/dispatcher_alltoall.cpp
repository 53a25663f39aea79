#include "moe/dispatcher_alltoall.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/check.h"

namespace foldmoe::moe {

void permute_chunks(const float* src, float* dst, const std::vector<int64_t>& sizes, int W, int nle, int64_t width,
                    bool to_expert_major) {
  // Offsets of every chunk in (w, le) order and in (le, w) order.
  std::vector<int64_t> off_wl(size_t(W * nle)), off_lw(size_t(W * nle));
  int64_t o = 0;
  for (int q = 0; q < W * nle; ++q) off_wl[size_t(q)] = o, o += sizes[size_t(q)];
  o = 0;
  for (int le = 0; le < nle; ++le)
    for (int w = 0; w < W; ++w) {
      const int q = w * nle + le;
      off_lw[size_t(q)] = o;
      o += sizes[size_t(q)];
    }
  for (int q = 0; q < W * nle; ++q) {
    const int64_t from = to_expert_major ? off_wl[size_t(q)] : off_lw[size_t(q)];
    const int64_t to = to_expert_major ? off_lw[size_t(q)] : off_wl[size_t(q)];
    if (sizes[size_t(q)] > 0)
      std::memcpy(dst + to * width, src + from * width, size_t(sizes[size_t(q)] * width) * sizeof(float));
  }
}

AlltoAllDispatcher::AlltoAllDispatcher(const ProcessGroups& g, int E)
    : ep_(g.ep), etp_(g.etp), etp_ep_(g.etp_ep), E_(E) {
  EP_ = ep_->size();
  ETP_ = etp_->size();
  FOLDMOE_CHECK(E % EP_ == 0, "num_experts {} not divisible by EP {}", E, EP_);
  nle_ = E / EP_;
  j_ = ep_->rank();
  t_ = etp_->rank();
}

namespace {
std::vector<int64_t> scaled(const std::vector<int64_t>& v, int64_t f) {
  std::vector<int64_t> r(v.size());
  for (size_t i = 0; i < v.size(); ++i) r[i] = v[i] * f;
  return r;
}
}  // namespace

void AlltoAllDispatcher::dispatch_preprocess(const float* x, const uint8_t* fmap, const float* fprobs, int64_t N,
                                             int64_t H, bool pad, DispatchState& st) {
  const int E = E_;
  st.N = N, st.H = H, st.E = E, st.pad = pad;
  // Counts and permutation 1: kept pairs in (expert ascending, token ascending) order.
  std::vector<int64_t> c(size_t(E), 0);
  for (int64_t n = 0; n < N; ++n)
    for (int e = 0; e < E; ++e) c[size_t(e)] += fmap[n * E + e];
  std::vector<int64_t> start(size_t(E) + 1, 0);
  for (int e = 0; e < E; ++e) start[size_t(e) + 1] = start[size_t(e)] + c[size_t(e)];
  st.num_out = start[size_t(E)];
  st.row_token.resize(size_t(st.num_out));
  st.row_expert.resize(size_t(st.num_out));
  {
    std::vector<int64_t> pos(start.begin(), start.end() - 1);
    for (int64_t n = 0; n < N; ++n)
      for (int e = 0; e < E; ++e)
        if (fmap[n * E + e]) {
          const int64_t r = pos[size_t(e)]++;
          st.row_token[size_t(r)] = int32_t(n);
          st.row_expert[size_t(r)] = int32_t(e);
        }
  }
  float* xp = ensure(st.x_perm, st.num_out * H);
  float* pp = ensure(st.p_perm, st.num_out);
  for (int64_t r = 0; r < st.num_out; ++r) {
    const int64_t n = st.row_token[size_t(r)];
    std::memcpy(xp + r * H, x + n * H, size_t(H) * sizeof(float));
    pp[r] = fprobs[n * E + st.row_expert[size_t(r)]];
  }

  // Metadata. G[t'][j'][e]: kept counts of the member with coordinates (t', j').
  const int W = ETP_ * EP_;
  std::vector<int64_t> G(size_t(W * E));
  if (W > 1 && !pad) {
    std::vector<float> send(size_t(E + 2)), recv(size_t(W * (E + 2)));
    send[0] = float(t_), send[1] = float(j_);
    for (int e = 0; e < E; ++e) send[size_t(e) + 2] = float(c[size_t(e)]);
    etp_ep_->all_gather(send.data(), recv.data(), E + 2);
    for (int mu = 0; mu < W; ++mu) {
      const float* b = recv.data() + mu * (E + 2);
      const int tt = int(b[0]), jj = int(b[1]);
      for (int e = 0; e < E; ++e) G[size_t((tt * EP_ + jj) * E + e)] = int64_t(b[e + 2]);
    }
  } else {
    if (pad)
      for (int e = 1; e < E; ++e)
        FOLDMOE_CHECK(c[size_t(e)] == c[0], "pad-to-capacity with unequal expert counts {} vs {}", c[size_t(e)], c[0]);
    for (int w = 0; w < W; ++w) std::copy(c.begin(), c.end(), G.begin() + w * E);
  }
  st.input_splits.assign(size_t(EP_), 0);
  for (int e = 0; e < E; ++e) st.input_splits[size_t(e / nle_)] += c[size_t(e)];
  st.output_splits.assign(size_t(EP_), 0);
  st.output_splits_tp.assign(size_t(ETP_), 0);
  st.tokens_per_local_expert.assign(size_t(nle_), 0);
  st.chunk_sizes.assign(size_t(W * nle_), 0);
  for (int tt = 0; tt < ETP_; ++tt)
    for (int jj = 0; jj < EP_; ++jj)
      for (int le = 0; le < nle_; ++le) {
        const int64_t g = G[size_t((tt * EP_ + jj) * E + j_ * nle_ + le)];
        if (tt == t_) st.output_splits[size_t(jj)] += g;
        st.output_splits_tp[size_t(tt)] += g;
        st.tokens_per_local_expert[size_t(le)] += g;
        st.chunk_sizes[size_t((tt * EP_ + jj) * nle_ + le)] = g;
      }
  st.num_recv = std::accumulate(st.output_splits.begin(), st.output_splits.end(), int64_t(0));
  st.num_rows = std::accumulate(st.output_splits_tp.begin(), st.output_splits_tp.end(), int64_t(0));
}

void AlltoAllDispatcher::dispatch_exchange(DispatchState& st) {
  const int64_t H = st.H;
  if (EP_ > 1) {
    ep_->all_to_all_v(st.x_perm.data(), scaled(st.input_splits, H), ensure(st.x_recv, st.num_recv * H),
                      scaled(st.output_splits, H));
    ep_->all_to_all_v(st.p_perm.data(), st.input_splits, ensure(st.p_recv, st.num_recv), st.output_splits);
    st.x_a2a = st.x_recv.data(), st.p_a2a = st.p_recv.data();
  } else {
    st.x_a2a = st.x_perm.data(), st.p_a2a = st.p_perm.data();
  }
  if (ETP_ > 1) {
    etp_->all_gather_v(st.x_a2a, ensure(st.x_gath, st.num_rows * H), scaled(st.output_splits_tp, H));
    etp_->all_gather_v(st.p_a2a, ensure(st.p_gath, st.num_rows), st.output_splits_tp);
    st.x_ag = st.x_gath.data(), st.p_ag = st.p_gath.data();
  } else {
    st.x_ag = st.x_a2a, st.p_ag = st.p_a2a;
  }
}

void AlltoAllDispatcher::dispatch_postprocess(DispatchState& st) {
  if (permute2()) {
    const int W = ETP_ * EP_;
    permute_chunks(st.x_ag, ensure(st.x_sort, st.num_rows * st.H), st.chunk_sizes, W, nle_, st.H, true);
    permute_chunks(st.p_ag, ensure(st.p_sort, st.num_rows), st.chunk_sizes, W, nle_, 1, true);
    st.rows = st.x_sort.data(), st.rows_p = st.p_sort.data();
  } else {
    st.rows = st.x_ag, st.rows_p = st.p_ag;
  }
}

void AlltoAllDispatcher::combine_preprocess(DispatchState& st, const float* out) {
  const int64_t H = st.H;
  const float* y = out;
  if (permute2()) {
    permute_chunks(out, ensure(st.y_gath, st.num_rows * H), st.chunk_sizes, ETP_ * EP_, nle_, H, false);
    y = st.y_gath.data();
  }
  if (ETP_ > 1) {
    etp_->reduce_scatter_v(y, ensure(st.y_recv, st.num_recv * H), scaled(st.output_splits_tp, H));
    y = st.y_recv.data();
  }
  st.y_stage = y;
}

void AlltoAllDispatcher::combine_exchange(DispatchState& st) {
  if (EP_ > 1) {
    const int64_t H = st.H;
    ep_->all_to_all_v(st.y_stage, scaled(st.output_splits, H), ensure(st.y_perm, st.num_out * H),
                      scaled(st.input_splits, H));
    st.y_stage = st.y_perm.data();
  }
}

void AlltoAllDispatcher::combine_postprocess(DispatchState& st, float* y) {
  const int64_t H = st.H;
  std::fill(y, y + st.N * H, 0.0f);
  // Unpermutation 1: rows ascending, so each token sums its experts in ascending order.
  for (int64_t r = 0; r < st.num_out; ++r) {
    float* d = y + int64_t(st.row_token[size_t(r)]) * H;
    const float* s = st.y_stage + r * H;
    for (int64_t h = 0; h < H; ++h) d[h] += s[h];
  }
}

void AlltoAllDispatcher::combine_backward(DispatchState& st, const float* dy) {
  const int64_t H = st.H;
  float* g = ensure(st.dy_perm, st.num_out * H);
  for (int64_t r = 0; r < st.num_out; ++r)
    std::memcpy(g + r * H, dy + int64_t(st.row_token[size_t(r)]) * H, size_t(H) * sizeof(float));
  const float* cur = g;
  if (EP_ > 1) {
    ep_->all_to_all_v(cur, scaled(st.input_splits, H), ensure(st.dy_recv, st.num_recv * H),
                      scaled(st.output_splits, H));
    cur = st.dy_recv.data();
  }
  if (ETP_ > 1) {
    etp_->all_gather_v(cur, ensure(st.dy_gath, st.num_rows * H), scaled(st.output_splits_tp, H));
    cur = st.dy_gath.data();
  }
  if (permute2()) {
    permute_chunks(cur, ensure(st.dy_sort, st.num_rows * H), st.chunk_sizes, ETP_ * EP_, nle_, H, true);
    cur = st.dy_sort.data();
  }
  st.d_rows = cur;
}

void AlltoAllDispatcher::dispatch_backward(DispatchState& st, const float* drows, const float* dp, float* dx,
                                           float* dprobs) {
  const int64_t H = st.H;
  const float* gx = drows;
  const float* gp = dp;
  if (permute2()) {
    permute_chunks(gx, ensure(st.dx_gath, st.num_rows * H), st.chunk_sizes, ETP_ * EP_, nle_, H, false);
    permute_chunks(gp, ensure(st.dp_gath, st.num_rows), st.chunk_sizes, ETP_ * EP_, nle_, 1, false);
    gx = st.dx_gath.data(), gp = st.dp_gath.data();
  }
  if (ETP_ > 1) {
    etp_->reduce_scatter_v(gx, ensure(st.dx_recv, st.num_recv * H), scaled(st.output_splits_tp, H));
    etp_->reduce_scatter_v(gp, ensure(st.dp_recv, st.num_recv), st.output_splits_tp);
    gx = st.dx_recv.data(), gp = st.dp_recv.data();
  }
  if (EP_ > 1) {
    ep_->all_to_all_v(gx, scaled(st.output_splits, H), ensure(st.dx_perm, st.num_out * H),
                      scaled(st.input_splits, H));
    ep_->all_to_all_v(gp, st.output_splits, ensure(st.dp_perm, st.num_out), st.input_splits);
    gx = st.dx_perm.data(), gp = st.dp_perm.data();
  }
  std::fill(dx, dx + st.N * H, 0.0f);
  std::fill(dprobs, dprobs + st.N * st.E, 0.0f);
  for (int64_t r = 0; r < st.num_out; ++r) {
    const int64_t n = st.row_token[size_t(r)];
    float* d = dx + n * H;
    const float* s = gx + r * H;
    for (int64_t h = 0; h < H; ++h) d[h] += s[h];
    dprobs[n * st.E + st.row_expert[size_t(r)]] += gp[r];
  }
}

}  // namespace foldmoe::moe
