#include "moe/router.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/rng.h"

namespace foldmoe::moe {

RouterOptions RouterOptions::from(const MoEConfig& m) {
  RouterOptions o;
  o.E = m.num_experts;
  o.k = m.topk;
  if (m.score_function == "sigmoid") {
    o.sigmoid = true;
  } else if (m.score_function != "softmax") {
    user_error("[moe] score_function = \"{}\": must be softmax or sigmoid", m.score_function);
  }
  o.pre_softmax = m.pre_softmax;
  o.scaling = m.topk_scaling_factor.value_or(1.0);
  if (m.num_groups.has_value() != m.group_topk.has_value())
    user_error("[moe] num_groups and group_topk must be set together (rule M3); set both or neither");
  if (m.num_groups) {
    o.num_groups = *m.num_groups;
    o.group_topk = *m.group_topk;
    const int G = o.num_groups, g = o.group_topk;
    if (G <= 0 || o.E % G != 0 || g < 1 || g > G || g > o.k || o.k > g * (o.E / G))
      user_error("[moe] num_groups = {}, group_topk = {} with num_experts = {}, topk = {}: rule M3 needs "
                 "E mod num_groups = 0, 1 <= group_topk <= num_groups and group_topk <= topk <= "
                 "group_topk*E/num_groups",
                 G, g, o.E, o.k);
  }
  if (o.k < 1 || o.k > o.E)
    user_error("[moe] topk = {} with num_experts = {}: rule M1 needs 1 <= topk <= num_experts", o.k, o.E);
  if (m.enable_expert_bias && !o.sigmoid)
    user_error("[moe] enable_expert_bias = true with score_function = \"{}\": rule M4 requires sigmoid",
               m.score_function);
  return o;
}

void topk_lower_index(const float* z, int E, int k, int* idx) {
  // k passes of an arg-max with a strict '>' so the lowest index wins ties. E and k are small.
  uint64_t taken_small = 0;
  std::vector<uint8_t> taken_big;
  const bool small = E <= 64;
  if (!small) taken_big.assign(size_t(E), 0);
  for (int j = 0; j < k; ++j) {
    int best = -1;
    float bv = 0;
    for (int e = 0; e < E; ++e) {
      const bool t = small ? ((taken_small >> e) & 1u) : taken_big[size_t(e)] != 0;
      if (t) continue;
      if (best < 0 || z[e] > bv) {
        best = e;
        bv = z[e];
      }
    }
    idx[j] = best;
    if (small)
      taken_small |= (uint64_t(1) << best);
    else
      taken_big[size_t(best)] = 1;
  }
}

namespace {

inline float sigmoidf(float x) { return 1.0f / (1.0f + std::exp(-x)); }

// Applies the group limit of docs/moe.md §2.4 to z (in place: experts of dropped groups -> -inf).
void limit_groups(const RouterOptions& o, float* z, float* scratch, int* idx) {
  const int G = o.num_groups, per = o.E / G, g = o.group_topk, take = o.k / g;
  float* gscore = scratch;  // [G]
  for (int q = 0; q < G; ++q) {
    topk_lower_index(z + q * per, per, take, idx);
    float s = 0;
    for (int j = 0; j < take; ++j) s += z[q * per + idx[j]];
    gscore[q] = s;
  }
  topk_lower_index(gscore, G, g, idx);
  for (int q = 0; q < G; ++q) {
    bool keep = false;
    for (int j = 0; j < g; ++j) keep = keep || idx[j] == q;
    if (!keep)
      for (int e = 0; e < per; ++e) z[q * per + e] = -std::numeric_limits<float>::infinity();
  }
}

}  // namespace

void route(const RouterOptions& o, const float* logits_NE, int64_t N, const float* expert_bias_E, float* probs_NE,
           uint8_t* map_NE, float* saved_NE, const int32_t* replay_NK, int64_t replay_stride) {
  const int E = o.E, k = o.k;
  if (replay_stride == 0) replay_stride = k;
  std::vector<float> z(static_cast<size_t>(E)), scratch(static_cast<size_t>(E) + 1);
  std::vector<int> idx(static_cast<size_t>(std::max(E, k))), sel(static_cast<size_t>(k));
  const float cs = float(o.scaling);
  for (int64_t n = 0; n < N; ++n) {
    const float* l = logits_NE + n * E;
    float* p = probs_NE + n * E;
    uint8_t* m = map_NE + n * E;
    float* sv = saved_NE + n * E;
    std::fill(p, p + E, 0.0f);
    std::fill(m, m + E, uint8_t(0));
    std::fill(sv, sv + E, 0.0f);
    // Selection tensor z.
    if (o.sigmoid) {
      for (int e = 0; e < E; ++e) {
        sv[e] = sigmoidf(l[e]);
        z[size_t(e)] = sv[e] + (expert_bias_E ? expert_bias_E[e] : 0.0f);
      }
    } else if (o.pre_softmax) {
      float mx = l[0];
      for (int e = 1; e < E; ++e) mx = std::max(mx, l[e]);
      float s = 0;
      for (int e = 0; e < E; ++e) s += (sv[e] = std::exp(l[e] - mx));
      const float inv = 1.0f / s;
      for (int e = 0; e < E; ++e) z[size_t(e)] = (sv[e] *= inv);
    } else {
      std::copy(l, l + E, z.begin());
    }
    const int32_t* rp = replay_NK ? replay_NK + n * replay_stride : nullptr;
    if (rp && rp[0] >= 0) {
      for (int j = 0; j < k; ++j) {
        FOLDMOE_CHECK(rp[j] >= 0 && rp[j] < E && !m[rp[j]], "router replay: row {} has invalid or repeated expert id {}",
                      n, rp[j]);
        sel[size_t(j)] = rp[j];
        m[rp[j]] = 1;
      }
    } else {
      if (o.num_groups > 0) limit_groups(o, z.data(), scratch.data(), idx.data());
      topk_lower_index(z.data(), E, k, sel.data());
    }
    for (int j = 0; j < k; ++j) m[sel[size_t(j)]] = 1;
    // Combine weights.
    if (o.sigmoid) {
      if (k == 1) {
        p[sel[0]] = sv[sel[0]] * cs;
      } else {
        float Z = 0;
        for (int j = 0; j < k; ++j) Z += sv[sel[size_t(j)]];
        Z += 1e-20f;
        for (int j = 0; j < k; ++j) p[sel[size_t(j)]] = sv[sel[size_t(j)]] / Z * cs;
      }
    } else if (o.pre_softmax) {
      for (int j = 0; j < k; ++j) p[sel[size_t(j)]] = sv[sel[size_t(j)]] * cs;
    } else {
      float mx = l[sel[0]];
      for (int j = 1; j < k; ++j) mx = std::max(mx, l[sel[size_t(j)]]);
      float s = 0;
      for (int j = 0; j < k; ++j) s += (sv[sel[size_t(j)]] = std::exp(l[sel[size_t(j)]] - mx));
      const float inv = 1.0f / s;
      for (int j = 0; j < k; ++j) {
        const int e = sel[size_t(j)];
        sv[e] *= inv;
        p[e] = sv[e] * cs;
      }
    }
  }
}

void route_backward(const RouterOptions& o, const float* saved_NE, const uint8_t* map_NE, const uint8_t* kept_NE,
                    const float* dprobs_NE, int64_t N, float* dlogits_NE) {
  const int E = o.E;
  const float cs = float(o.scaling);
  for (int64_t n = 0; n < N; ++n) {
    const float* sv = saved_NE + n * E;
    const uint8_t* m = map_NE + n * E;
    const uint8_t* kp = kept_NE + n * E;
    const float* dp = dprobs_NE + n * E;
    float* dl = dlogits_NE + n * E;
    auto ghat = [&](int e) { return (m[e] && kp[e]) ? cs * dp[e] : 0.0f; };
    if (o.sigmoid) {
      if (o.k == 1) {
        for (int e = 0; e < E; ++e)
          if (m[e]) dl[e] += ghat(e) * sv[e] * (1.0f - sv[e]);
      } else {
        float Z = 0;
        for (int e = 0; e < E; ++e)
          if (m[e]) Z += sv[e];
        Z += 1e-20f;
        float dot = 0;
        for (int e = 0; e < E; ++e)
          if (m[e]) dot += sv[e] / Z * ghat(e);
        for (int e = 0; e < E; ++e)
          if (m[e]) dl[e] += (ghat(e) - dot) / Z * sv[e] * (1.0f - sv[e]);
      }
    } else if (o.pre_softmax) {
      float dot = 0;
      for (int e = 0; e < E; ++e)
        if (m[e]) dot += sv[e] * ghat(e);
      for (int e = 0; e < E; ++e) dl[e] += sv[e] * (ghat(e) - dot);
    } else {
      float dot = 0;
      for (int e = 0; e < E; ++e)
        if (m[e]) dot += sv[e] * ghat(e);
      for (int e = 0; e < E; ++e)
        if (m[e]) dl[e] += sv[e] * (ghat(e) - dot);
    }
  }
}

void jitter_multipliers(uint64_t seed, int64_t step, int layer, double eps, int64_t S_loc, int64_t B,
                        const int64_t* global_seq_B, const int32_t* positions_N, int64_t H, float* u_NH) {
  const CounterRng rng(seed, "layers." + std::to_string(layer) + ".moe.router.jitter", uint64_t(step));
  for (int64_t s = 0; s < S_loc; ++s)
    for (int64_t b = 0; b < B; ++b) {
      const int64_t n = s * B + b;
      const uint64_t gseq = uint64_t(global_seq_B ? global_seq_B[b] : b);
      const uint64_t pos = uint64_t(positions_N ? positions_N[n] : int32_t(s));
      // Counter: (global sequence, position, h) packed into one 64-bit index; step in the sub-key.
      const uint64_t base = ((gseq << 24) + pos) * uint64_t(H);
      float* u = u_NH + n * H;
      for (int64_t h = 0; h < H; ++h) u[h] = float(1.0 - eps + 2.0 * eps * rng.uniform(base + uint64_t(h)));
    }
}

}  // namespace foldmoe::moe
