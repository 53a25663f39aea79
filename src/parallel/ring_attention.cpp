#include "parallel/ring_attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/check.h"
#include "ops/attention_rows.h"
#include "ops/linear.h"

namespace foldmoe {

namespace {

constexpr int64_t kRows = 64;  // query rows per score tile ([kRows, Sk] scores at a time)
constexpr int kTagForward = 7301, kTagBackward = 7302, kTagReturn = 7303, kTagBackwardKV = 7304;

// dst[s, :] = scale · src[s·stride, :] (one head of one sequence made contiguous).
void gather(const float* src, int64_t stride, int64_t S, int64_t D, float scale, float* dst) {
  for (int64_t s = 0; s < S; ++s)
    for (int64_t d = 0; d < D; ++d) dst[s * D + d] = src[s * stride + d] * scale;
}
void scatter_add(const float* src, int64_t S, int64_t D, float* dst, int64_t stride) {
  for (int64_t s = 0; s < S; ++s)
    for (int64_t d = 0; d < D; ++d) dst[s * stride + d] += src[s * D + d];
}

// A block of `rows` query rows that sees all Sk keys (a full, non-causal block), for the
// element-wise passes of ops/attention_rows.h: a first position past every key.
ops::ScoreRows all_keys(int64_t rows, int64_t Sk) {
  return {.rows = rows, .first_pos = Sk, .heads = 1, .j0 = 0, .cols = Sk, .ld = Sk};
}

// Passes `cur` (n floats) to rank (r+1) mod CP and receives the block of rank (r−1) mod CP into
// `next`, then swaps. Even ranks send first, odd ranks receive first (blocking send/recv).
void ring_shift(Communicator& cp, std::vector<float>& cur, std::vector<float>& next, int64_t n, int tag) {
  const int P = cp.size(), r = cp.rank(), to = (r + 1) % P, from = (r + P - 1) % P;
  next.resize(size_t(n));
  if (r % 2 == 0) {
    cp.send(cur.data(), n, to, tag);
    cp.recv(next.data(), n, from, tag);
  } else {
    cp.recv(next.data(), n, from, tag);
    cp.send(cur.data(), n, to, tag);
  }
  std::swap(cur, next);
}

// The K/V block of the next ring step travels while this step computes (docs/dense-parallel.md §4.3): `cur` is
// sent to rank r+1 and the block of rank r−1 lands in `next`; finish() waits and swaps. With a
// backend without non-blocking point-to-point, finish() does a blocking ring_shift instead.
class RingPrefetch {
 public:
  RingPrefetch(Communicator& cp, std::vector<float>& cur, std::vector<float>& next, int64_t n, int tag)
      : cp_(cp), cur_(cur), next_(next), n_(n), tag_(tag), async_(cp.nonblocking_p2p()) {}
  void start() {
    if (!async_) return;
    const int P = cp_.size(), r = cp_.rank();
    next_.resize(size_t(n_));
    recv_ = cp_.irecv(next_.data(), n_, (r + P - 1) % P, tag_);
    send_ = cp_.isend(cur_.data(), n_, (r + 1) % P, tag_);
  }
  void finish() {
    if (!async_) return ring_shift(cp_, cur_, next_, n_, tag_);
    cp_.wait_recv(recv_);
    cp_.wait_send(send_);
    std::swap(cur_, next_);
  }

 private:
  Communicator& cp_;
  std::vector<float>&cur_, &next_;
  int64_t n_;
  int tag_;
  bool async_;
  int64_t recv_ = 0, send_ = 0;
};

// Online-softmax merge of a partial result (o_i, lse_i over local rows [s0, s0 + Sq)) into (o, lse).
void merge(float* o, float* lse, int64_t S, const float* o_i, const float* lse_i, int64_t s0, int64_t Sq, int64_t B,
           int64_t A, int64_t D) {
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < A; ++h)
      for (int64_t s = 0; s < Sq; ++s) {
        float& L = lse[(b * A + h) * S + s0 + s];
        const double l0 = L, l1 = lse_i[(b * A + h) * Sq + s];
        const double mx = std::max(l0, l1);
        const double ln = mx + std::log(std::exp(l0 - mx) + std::exp(l1 - mx));
        const float w0 = float(std::exp(l0 - ln)), w1 = float(std::exp(l1 - ln));
        float* orow = o + ((s0 + s) * B + b) * A * D + h * D;
        const float* irow = o_i + (s * B + b) * A * D + h * D;
        for (int64_t d = 0; d < D; ++d) orow[d] = w0 * orow[d] + w1 * irow[d];
        L = float(ln);
      }
}

}  // namespace

void attention_full_forward(const float* q, const float* k, const float* v, float* o, float* lse, int64_t lse_ld,
                            int64_t Sq, int64_t Sk, int64_t B, int64_t A, int64_t G, int64_t D) {
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t hpk = A / G, q_stride = B * A * D, kv_stride = B * G * D;
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> Kc(size_t(Sk * D)), Vc(size_t(Sk * D)), Qc(size_t(Sq * D)), Oc(size_t(kRows * D)),
      P(size_t(kRows * Sk)), m(static_cast<size_t>(kRows)), l(static_cast<size_t>(kRows));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      gather(k + (b * G + g) * D, kv_stride, Sk, D, 1.0f, Kc.data());
      gather(v + (b * G + g) * D, kv_stride, Sk, D, 1.0f, Vc.data());
      for (int64_t h = g * hpk; h < (g + 1) * hpk; ++h) {
        gather(q + (b * A + h) * D, q_stride, Sq, D, scale, Qc.data());
        float* lse_h = lse + (b * A + h) * lse_ld;
        for (int64_t i0 = 0; i0 < Sq; i0 += kRows) {
          const int64_t rows = std::min(kRows, Sq - i0);
          ops::gemm<float>(false, true, rows, Sk, D, 1.0f, Qc.data() + i0 * D, D, Kc.data(), D, 0.0f, P.data(), Sk);
          // The whole row is one key tile: the online-softmax update from (m, l) = (−inf, 0) is
          // the softmax (no output to rescale yet: D = 0).
          std::fill(m.begin(), m.end(), -std::numeric_limits<float>::infinity());
          std::fill(l.begin(), l.end(), 0.0f);
          ops::online_softmax_rows(P.data(), all_keys(rows, Sk), m.data(), l.data(), Oc.data(), 0);
          for (int64_t r = 0; r < rows; ++r) lse_h[i0 + r] = m[size_t(r)] + std::log(l[size_t(r)]);
          ops::gemm<float>(false, false, rows, D, Sk, 1.0f, P.data(), Sk, Vc.data(), D, 0.0f, Oc.data(), D);
          for (int64_t r = 0; r < rows; ++r) {
            const float inv = 1.0f / l[size_t(r)];
            float* orow = o + ((i0 + r) * B + b) * A * D + h * D;
            for (int64_t d = 0; d < D; ++d) orow[d] = Oc[size_t(r * D + d)] * inv;
          }
        }
      }
    }
}

void attention_full_backward(const float* q, const float* k, const float* v, const float* lse, const float* delta,
                             int64_t lse_ld, const float* dout, float* dq, float* dk, float* dv, int64_t Sq, int64_t Sk,
                             int64_t B, int64_t A, int64_t G, int64_t D) {
  FOLDMOE_CHECK(G > 0 && A % G == 0, "query heads {} not a multiple of KV heads {}", A, G);
  const int64_t hpk = A / G, q_stride = B * A * D, kv_stride = B * G * D;
  const float scale = 1.0f / std::sqrt(float(D));
  std::vector<float> Kc(size_t(Sk * D)), Vc(size_t(Sk * D)), dKc(size_t(Sk * D)), dVc(size_t(Sk * D)),
      Qc(size_t(Sq * D)), dOc(size_t(Sq * D)), dQc(size_t(Sq * D)), P(size_t(kRows * Sk)), dP(size_t(kRows * Sk));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t g = 0; g < G; ++g) {
      gather(k + (b * G + g) * D, kv_stride, Sk, D, 1.0f, Kc.data());
      gather(v + (b * G + g) * D, kv_stride, Sk, D, 1.0f, Vc.data());
      std::fill(dKc.begin(), dKc.end(), 0.0f);
      std::fill(dVc.begin(), dVc.end(), 0.0f);
      for (int64_t h = g * hpk; h < (g + 1) * hpk; ++h) {
        const int64_t off = (b * A + h) * D;
        gather(q + off, q_stride, Sq, D, scale, Qc.data());
        gather(dout + off, q_stride, Sq, D, 1.0f, dOc.data());
        std::fill(dQc.begin(), dQc.end(), 0.0f);
        const float* lse_h = lse + (b * A + h) * lse_ld;
        const float* delta_h = delta + (b * A + h) * lse_ld;
        for (int64_t i0 = 0; i0 < Sq; i0 += kRows) {
          const int64_t rows = std::min(kRows, Sq - i0);
          const float* Qt = Qc.data() + i0 * D;
          const float* dOt = dOc.data() + i0 * D;
          ops::gemm<float>(false, true, rows, Sk, D, 1.0f, Qt, D, Kc.data(), D, 0.0f, P.data(), Sk);
          ops::gemm<float>(false, true, rows, Sk, D, 1.0f, dOt, D, Vc.data(), D, 0.0f, dP.data(), Sk);
          ops::score_grad_rows(P.data(), dP.data(), all_keys(rows, Sk), lse_h + i0, delta_h + i0);
          ops::gemm<float>(true, false, Sk, D, rows, 1.0f, P.data(), Sk, dOt, D, 1.0f, dVc.data(), D);
          ops::gemm<float>(false, false, rows, D, Sk, scale, dP.data(), Sk, Kc.data(), D, 1.0f, dQc.data() + i0 * D, D);
          ops::gemm<float>(true, false, Sk, D, rows, 1.0f, dP.data(), Sk, Qt, D, 1.0f, dKc.data(), D);
        }
        scatter_add(dQc.data(), Sq, D, dq + off, q_stride);
      }
      scatter_add(dKc.data(), Sk, D, dk + (b * G + g) * D, kv_stride);
      scatter_add(dVc.data(), Sk, D, dv + (b * G + g) * D, kv_stride);
    }
}

void ring_attention_forward(Communicator& cp, const float* q, const float* k, const float* v, float* o, float* lse,
                            const ops::AttentionShape& sh, RingAttentionWorkspace& ws, CpCommType comm) {
  const int P = cp.size(), r = cp.rank();
  if (P == 1) return ops::attention_forward(q, k, v, o, lse, sh);
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D, c = S / 2;
  FOLDMOE_CHECK(S % 2 == 0, "ring attention: local length {} is not two chunks", S);
  const int64_t nkv = S * B * G * D;
  ws.kv.resize(size_t(2 * nkv));
  std::memcpy(ws.kv.data(), k, size_t(nkv) * sizeof(float));
  std::memcpy(ws.kv.data() + nkv, v, size_t(nkv) * sizeof(float));
  const bool gathered = comm == CpCommType::AllGather;
  RingPrefetch ring(cp, ws.kv, ws.kv_next, 2 * nkv, kTagForward);
  if (gathered) {  // every rank's [K | V] at once, in member order
    ws.kv_next.resize(size_t(P * 2 * nkv));
    cp.all_gather(ws.kv.data(), ws.kv_next.data(), 2 * nkv);
  } else {
    ring.start();
  }
  ops::attention_forward(q, k, v, o, lse, sh);  // step 0: own K/V, causal over the local concatenation
  for (int i = 1; i < P; ++i) {
    const int s = (r - i + P) % P;
    if (!gathered) {
      ring.finish();
      if (i + 1 < P) ring.start();  // step i+1's block travels while step i computes
    }
    const float* ks = gathered ? ws.kv_next.data() + int64_t(s) * 2 * nkv : ws.kv.data();
    const float* vs = ks + nkv;
    if (s < r) {  // all local Q × chunk a' of the source
      ws.o_i.resize(size_t(S * B * A * D));
      ws.lse_i.resize(size_t(B * A * S));
      attention_full_forward(q, ks, vs, ws.o_i.data(), ws.lse_i.data(), S, S, c, B, A, G, D);
      merge(o, lse, S, ws.o_i.data(), ws.lse_i.data(), 0, S, B, A, D);
    } else {  // chunk b of Q × all K/V of the source
      ws.o_i.resize(size_t(c * B * A * D));
      ws.lse_i.resize(size_t(B * A * c));
      attention_full_forward(q + c * B * A * D, ks, vs, ws.o_i.data(), ws.lse_i.data(), c, c, S, B, A, G, D);
      merge(o, lse, S, ws.o_i.data(), ws.lse_i.data(), c, c, B, A, D);
    }
  }
}

void ring_attention_backward(Communicator& cp, const float* q, const float* k, const float* v, const float* o,
                             const float* lse, const float* dout, float* dq, float* dk, float* dv,
                             const ops::AttentionShape& sh, RingAttentionWorkspace& ws, CpCommType comm) {
  const int P = cp.size(), r = cp.rank();
  if (P == 1) return ops::attention_backward(q, k, v, o, lse, dout, dq, dk, dv, sh);
  const int64_t S = sh.S, B = sh.B, A = sh.A, G = sh.G, D = sh.D, c = S / 2;
  const int64_t nkv = S * B * G * D;
  const bool gathered = comm == CpCommType::AllGather;
  // p2p: the source's [K | V] (kv) travels ahead of the compute, its [dK | dV] accumulator (dk_tmp)
  // follows it one rank behind, after each step's contributions. all_gather: every rank's [K | V]
  // (kv_next) and a [dK | dV] accumulator per source rank (dk_tmp), reduce-scattered home.
  ws.kv.resize(size_t(2 * nkv));
  std::memcpy(ws.kv.data(), k, size_t(nkv) * sizeof(float));
  std::memcpy(ws.kv.data() + nkv, v, size_t(nkv) * sizeof(float));
  RingPrefetch ring(cp, ws.kv, ws.kv_next, 2 * nkv, kTagBackwardKV);
  if (gathered) {
    ws.kv_next.resize(size_t(P * 2 * nkv));
    cp.all_gather(ws.kv.data(), ws.kv_next.data(), 2 * nkv);
    ws.dk_tmp.assign(size_t(P * 2 * nkv), 0.0f);
  } else {
    ws.dk_tmp.resize(size_t(2 * nkv));
    ring.start();
  }
  const auto grads_of = [&](int src) {  // where the dK/dV of source rank src accumulate
    return gathered ? ws.dk_tmp.data() + int64_t(src) * 2 * nkv : ws.dk_tmp.data();
  };
  // Step 0 (causal local block) overwrites dq and starts the own dK/dV accumulators.
  ops::attention_backward(q, k, v, o, lse, dout, dq, grads_of(r), grads_of(r) + nkv, sh);
  ws.delta.resize(size_t(B * A * S));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < A; ++h)
      for (int64_t s = 0; s < S; ++s) {
        const float* orow = o + (s * B + b) * A * D + h * D;
        const float* drow = dout + (s * B + b) * A * D + h * D;
        float acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += orow[d] * drow[d];
        ws.delta[size_t((b * A + h) * S + s)] = acc;
      }
  for (int i = 1; i < P; ++i) {
    const int s = (r - i + P) % P;
    if (!gathered) {
      ring_shift(cp, ws.dk_tmp, ws.dv_tmp, 2 * nkv, kTagBackward);  // source s's accumulator arrives
      ring.finish();
      if (i + 1 < P) ring.start();
    }
    const float* kb = gathered ? ws.kv_next.data() + int64_t(s) * 2 * nkv : ws.kv.data();
    float* gb = grads_of(s);
    if (s < r) {
      attention_full_backward(q, kb, kb + nkv, lse, ws.delta.data(), S, dout, dq, gb, gb + nkv, S, c, B, A, G, D);
    } else {
      const int64_t qo = c * B * A * D;
      attention_full_backward(q + qo, kb, kb + nkv, lse + c, ws.delta.data() + c, S, dout + qo, dq + qo, gb, gb + nkv,
                              c, S, B, A, G, D);
    }
  }
  std::vector<float>& ret = ws.dq_tmp;
  if (gathered) {  // sum every rank's contributions to my chunks' dK/dV
    ret.resize(size_t(2 * nkv));
    cp.reduce_scatter(ws.dk_tmp.data(), ret.data(), 2 * nkv);
  } else {  // one more hop brings every accumulator home (the one held now belongs to rank r+1)
    ret.assign(ws.dk_tmp.begin(), ws.dk_tmp.end());
    ring_shift(cp, ret, ws.dv_tmp, 2 * nkv, kTagReturn);
  }
  std::memcpy(dk, ret.data(), size_t(nkv) * sizeof(float));
  std::memcpy(dv, ret.data() + nkv, size_t(nkv) * sizeof(float));
}

}  // namespace foldmoe
