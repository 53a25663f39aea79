#include "moe/aux_loss.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "moe/router.h"

namespace foldmoe::moe {

AuxOptions AuxOptions::from(const MoEConfig& m) {
  AuxOptions o;
  o.E = m.num_experts;
  o.k = m.topk;
  o.sigmoid = m.score_function == "sigmoid";
  if (m.load_balancing_type.size() != m.aux_loss_coeff.size())
    user_error("[moe] load_balancing_type has {} entries but aux_loss_coeff has {}: rule M8 needs equal lengths",
               m.load_balancing_type.size(), m.aux_loss_coeff.size());
  for (size_t i = 0; i < m.load_balancing_type.size(); ++i) {
    const std::string& t = m.load_balancing_type[i];
    const double a = m.aux_loss_coeff[i];
    if (a < 0) user_error("[moe] aux_loss_coeff[{}] = {}: rule M8 needs coefficients >= 0", i, a);
    bool* flag = nullptr;
    double* alpha = nullptr;
    if (t == "aux_loss") {
      flag = &o.aux, alpha = &o.alpha_aux;
    } else if (t == "seq_aux_loss") {
      flag = &o.seq, alpha = &o.alpha_seq;
    } else if (t == "global_aux_loss") {
      flag = &o.global, alpha = &o.alpha_global;
    } else if (t == "none") {
      continue;
    } else {
      user_error("[moe] load_balancing_type \"{}\": must be aux_loss, seq_aux_loss, global_aux_loss or none", t);
    }
    if (*flag) user_error("[moe] load_balancing_type lists \"{}\" twice (rule M8)", t);
    *flag = true;
    *alpha = a;
  }
  if (m.z_loss_coeff) {
    o.z = true;
    o.alpha_z = *m.z_loss_coeff;
  }
  return o;
}

void aux_scores(const AuxOptions& o, const float* logits_NE, int64_t N, const uint8_t* valid_N, float* a_NE,
                float* s_NE, uint8_t* map_NE, int* idx) {
  const int E = o.E;
  for (int64_t n = 0; n < N; ++n) {
    const float* l = logits_NE + n * E;
    float* a = a_NE + n * E;
    uint8_t* m = map_NE + n * E;
    std::fill(m, m + E, uint8_t(0));
    if (valid_N && !valid_N[n]) {
      std::fill(a, a + E, 0.0f);
      if (s_NE) std::fill(s_NE + n * E, s_NE + (n + 1) * E, 0.0f);
      continue;
    }
    if (o.sigmoid) {
      float* s = s_NE + n * E;
      float Z = 0;
      for (int e = 0; e < E; ++e) Z += (s[e] = 1.0f / (1.0f + std::exp(-l[e])));
      Z += 1e-20f;
      for (int e = 0; e < E; ++e) a[e] = s[e] / Z;
    } else {
      float mx = l[0];
      for (int e = 1; e < E; ++e) mx = std::max(mx, l[e]);
      float Z = 0;
      for (int e = 0; e < E; ++e) Z += (a[e] = std::exp(l[e] - mx));
      const float inv = 1.0f / Z;
      for (int e = 0; e < E; ++e) a[e] *= inv;
    }
    topk_lower_index(a, E, o.k, idx);
    for (int j = 0; j < o.k; ++j) m[idx[j]] = 1;
  }
}

void aux_losses_forward(const AuxOptions& o, const float* logits_NE, const AuxBatch& b, Communicator& tp_cp,
                        Communicator& tp_dp_cp, GlobalAuxState& g, AuxWorkspace& ws, std::vector<uint8_t>& map_ws,
                        float* dlogits_NE, AuxValues* logged) {
  const int E = o.E, k = o.k;
  const int64_t N = b.N, B = b.B;
  FOLDMOE_CHECK(N == b.S_loc * B, "aux losses: N = {} but S_loc·B = {}·{}", N, b.S_loc, B);
  AuxValues out;
  const bool balance = o.aux || o.seq || o.global;
  auto valid = [&](int64_t n) { return !b.valid_N || b.valid_N[n] != 0; };

  // z-loss (docs/moe.md §4.6): needs only the logits.
  if (o.z) {
    double local_valid = 0, sum_lse2 = 0;
    std::vector<double>& lse = ws.red;
    lse.assign(size_t(N), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      if (!valid(n)) continue;
      const float* l = logits_NE + n * E;
      double mx = l[0];
      for (int e = 1; e < E; ++e) mx = std::max(mx, double(l[e]));
      double s = 0;
      for (int e = 0; e < E; ++e) s += std::exp(double(l[e]) - mx);
      lse[size_t(n)] = mx + std::log(s);
      sum_lse2 += lse[size_t(n)] * lse[size_t(n)];
      local_valid += 1;
    }
    double red[2] = {local_valid, 0};
    tp_cp.all_reduce(red, 1);
    const double n_tpcp = std::max(red[0], 1.0);
    const double piece = sum_lse2 / n_tpcp;  // with α_z = 1
    const double kappa = b.per_token ? red[0] : 1.0;
    const double coef = b.sigma * kappa * o.alpha_z * 2.0 / n_tpcp;
    for (int64_t n = 0; n < N; ++n) {
      if (!valid(n)) continue;
      const float* l = logits_NE + n * E;
      float* dl = dlogits_NE + n * E;
      const double L = lse[size_t(n)];
      for (int e = 0; e < E; ++e) dl[e] += float(coef * L * std::exp(double(l[e]) - L));
    }
    double pr = piece;
    tp_cp.all_reduce(&pr, 1);
    out.z = pr;
  }

  if (balance) {
    ws.a_NE.resize(size_t(N * E));
    if (o.sigmoid) ws.s_NE.resize(size_t(N * E));
    map_ws.resize(size_t(N * E));
    ws.idx.resize(size_t(E));
    aux_scores(o, logits_NE, N, b.valid_N, ws.a_NE.data(), o.sigmoid ? ws.s_NE.data() : nullptr, map_ws.data(),
               ws.idx.data());
    if (b.replay_NK)
      for (int64_t n = 0; n < N; ++n) {
        const int32_t* ids = b.replay_NK + n * b.replay_stride;
        if (ids[0] < 0 || !valid(n)) continue;
        uint8_t* row = map_ws.data() + n * E;
        std::fill(row, row + E, uint8_t(0));
        for (int j = 0; j < k; ++j) row[ids[j]] = 1;
      }
    const float* a = ws.a_NE.data();
    const uint8_t* m = map_ws.data();

    // One tp_cp reduction: [counts E | per-sequence counts B·E | valid | per-sequence valid B].
    std::vector<double>& r = ws.red;
    r.assign(size_t(E + B * E + 1 + B), 0.0);
    double* c = r.data();
    double* cb = c + E;
    double* nv = cb + B * E;
    double* nvb = nv + 1;
    for (int64_t n = 0; n < N; ++n) {
      if (!valid(n)) continue;
      const int64_t bb = n % B;
      nv[0] += 1;
      nvb[bb] += 1;
      for (int e = 0; e < E; ++e)
        if (m[n * E + e]) {
          c[e] += 1;
          cb[bb * E + e] += 1;
        }
    }
    // Local score sums Σ_n a (total and per sequence), for the pieces.
    std::vector<double> asum(size_t(E + B * E), 0.0);
    for (int64_t n = 0; n < N; ++n) {
      const int64_t bb = n % B;
      for (int e = 0; e < E; ++e) {
        asum[size_t(e)] += a[n * E + e];
        asum[size_t(E + bb * E + e)] += a[n * E + e];
      }
    }
    std::vector<double> local_c(c, c + E);  // for the global statistic
    const double local_valid = nv[0];
    tp_cp.all_reduce(r.data(), int64_t(r.size()));

    ws.gamma_NE.assign(size_t(N * E), 0.0);
    double* gam = ws.gamma_NE.data();
    double pieces[3] = {0, 0, 0};  // aux, seq, global (α = 1)

    if (o.aux) {
      const double T = std::max(nv[0], 1.0);
      const double w = double(E) / (double(k) * T * T);
      for (int e = 0; e < E; ++e) pieces[0] += w * asum[size_t(e)] * c[e];
      const double kappa = b.per_token ? nv[0] : 1.0;
      const double scale = b.sigma * kappa * o.alpha_aux * w;
      for (int64_t n = 0; n < N; ++n)
        for (int e = 0; e < E; ++e) gam[n * E + e] += scale * c[e];
    }
    if (o.seq) {
      int64_t B_eff = 0;
      for (int64_t bb = 0; bb < B; ++bb) B_eff += nvb[bb] > 0 ? 1 : 0;
      const double T_nomask = b.S_full > 0 ? double(b.S_full) : double(b.S_loc * tp_cp.size());
      const double kappa = b.per_token ? nv[0] : 1.0;
      std::vector<double> wb(size_t(B), 0.0);
      for (int64_t bb = 0; bb < B; ++bb) {
        if (nvb[bb] <= 0) continue;
        const double Tb = b.valid_N ? nvb[bb] : T_nomask;
        wb[size_t(bb)] = double(E) / (double(k) * Tb * Tb * double(B_eff));
        for (int e = 0; e < E; ++e) pieces[1] += wb[size_t(bb)] * asum[size_t(E + bb * E + e)] * cb[bb * E + e];
      }
      const double scale = b.sigma * kappa * o.alpha_seq;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t bb = n % B;
        for (int e = 0; e < E; ++e) gam[n * E + e] += scale * wb[size_t(bb)] * cb[bb * E + e];
      }
    }
    if (o.global) {
      std::vector<double> gr(size_t(E + 1));
      std::copy(local_c.begin(), local_c.end(), gr.begin());
      gr[size_t(E)] = local_valid;
      tp_dp_cp.all_reduce(gr.data(), E + 1);
      if (g.acc.size() != size_t(E)) g.acc.assign(size_t(E), 0.0);
      for (int e = 0; e < E; ++e) g.acc[size_t(e)] += gr[size_t(e)];
      g.steps += 1;
      const double Tg = std::max(gr[size_t(E)], 1.0);
      const double w = double(E) / (double(k) * Tg * Tg);
      const double kappa = b.per_token ? gr[size_t(E)] : double(b.dp_size);
      const double scale = b.sigma * kappa * o.alpha_global * w;
      for (int e = 0; e < E; ++e) {
        const double cbar = g.acc[size_t(e)] / double(g.steps);
        pieces[2] += w * asum[size_t(e)] * cbar;
        for (int64_t n = 0; n < N; ++n) gam[n * E + e] += scale * cbar;
      }
    }

    // Through the aux scores (docs/moe.md §5.1). Padded tokens have a = 0 and get no gradient.
    for (int64_t n = 0; n < N; ++n) {
      if (!valid(n)) continue;
      const float* an = a + n * E;
      const double* gn = gam + n * E;
      float* dl = dlogits_NE + n * E;
      double dot = 0;
      for (int e = 0; e < E; ++e) dot += double(an[e]) * gn[e];
      if (o.sigmoid) {
        const float* s = ws.s_NE.data() + n * E;
        double Z = 1e-20;
        for (int e = 0; e < E; ++e) Z += s[e];
        for (int e = 0; e < E; ++e) dl[e] += float((gn[e] - dot) / Z * s[e] * (1.0 - s[e]));
      } else {
        for (int e = 0; e < E; ++e) dl[e] += float(an[e] * (gn[e] - dot));
      }
    }

    double pr[2] = {pieces[0], pieces[1]};
    tp_cp.all_reduce(pr, 2);
    tp_dp_cp.all_reduce(&pieces[2], 1);
    out.aux = o.aux ? pr[0] : 0.0;
    out.seq = o.seq ? pr[1] : 0.0;
    out.global = o.global ? pieces[2] : 0.0;
  }
  if (logged) *logged = out;
}

}  // namespace foldmoe::moe
