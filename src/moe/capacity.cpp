#include "moe/capacity.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"

namespace foldmoe::moe {

int64_t expert_capacity(int64_t N, int k, int E, double cf) {
  const double c = std::ceil(((double(N) * double(k)) / double(E)) * cf);
  return std::min(int64_t(c), N);
}

CapacityUnits capacity_partition_units(int64_t S, int64_t B, int tp, int cp) {
  FOLDMOE_CHECK(tp >= 1 && cp >= 1, "capacity_partition [{}, {}]", tp, cp);
  FOLDMOE_CHECK(cp == 1 || S % (2 * cp) == 0, "capacity_partition: S = {} not divisible by 2*cp = {}", S, 2 * cp);
  FOLDMOE_CHECK((S / cp) % tp == 0, "capacity_partition: S/cp = {} not divisible by tp = {}", S / cp, tp);
  CapacityUnits u;
  std::vector<int64_t> cp_pos;  // positions of one CP rank, local order
  const int64_t S_cp = S / cp, S_u = S_cp / tp;
  u.offsets.push_back(0);
  for (int c = 0; c < cp; ++c) {
    cp_pos.clear();
    if (cp == 1) {
      for (int64_t s = 0; s < S; ++s) cp_pos.push_back(s);
    } else {
      const int64_t ch = S / (2 * cp);
      for (int64_t i = 0; i < ch; ++i) cp_pos.push_back(c * ch + i);
      for (int64_t i = 0; i < ch; ++i) cp_pos.push_back((2 * cp - 1 - c) * ch + i);
    }
    for (int t = 0; t < tp; ++t) {
      for (int64_t i = t * S_u; i < (t + 1) * S_u; ++i)
        for (int64_t b = 0; b < B; ++b) u.rows.push_back(int32_t(cp_pos[size_t(i)] * B + b));
      u.offsets.push_back(int64_t(u.rows.size()));
    }
  }
  return u;
}

void apply_capacity(const float* probs_NE, const uint8_t* map_NE, int64_t N, int E, int k, double cf,
                    DropPolicy policy, bool pad, const CapacityUnits& units, float* final_probs_NE,
                    uint8_t* final_map_NE, std::vector<int32_t>& scratch) {
  std::fill(final_map_NE, final_map_NE + N * E, uint8_t(0));
  const int64_t nunits = units.empty() ? 1 : int64_t(units.offsets.size()) - 1;
  scratch.resize(size_t(N));
  for (int64_t u = 0; u < nunits; ++u) {
    // Rows of this unit, in unit token order.
    const int64_t Nu = units.empty() ? N : units.offsets[size_t(u) + 1] - units.offsets[size_t(u)];
    const int32_t* rows = units.empty() ? nullptr : units.rows.data() + units.offsets[size_t(u)];
    auto row = [&](int64_t i) { return rows ? int64_t(rows[i]) : i; };
    const int64_t C = expert_capacity(Nu, k, E, cf);
    for (int e = 0; e < E; ++e) {
      int64_t kept = 0;
      if (policy == DropPolicy::Position) {
        // First C routed tokens in unit order, then (padding) unrouted tokens by index.
        for (int64_t i = 0; i < Nu && kept < C; ++i)
          if (map_NE[row(i) * E + e]) {
            final_map_NE[row(i) * E + e] = 1;
            ++kept;
          }
        if (pad)
          for (int64_t i = 0; i < Nu && kept < C; ++i)
            if (!map_NE[row(i) * E + e]) {
              final_map_NE[row(i) * E + e] = 1;
              ++kept;
            }
      } else {
        // The C smallest keys (-probs, unit index): a strict total order, so the set is unique.
        int32_t* idx = scratch.data();
        for (int64_t i = 0; i < Nu; ++i) idx[i] = int32_t(i);
        auto less = [&](int32_t a, int32_t b) {
          const float pa = probs_NE[row(a) * E + e], pb = probs_NE[row(b) * E + e];
          if (pa != pb) return pa > pb;
          return a < b;
        };
        if (C < Nu) std::nth_element(idx, idx + C, idx + Nu, less);
        for (int64_t i = 0; i < C; ++i) {
          const int64_t n = row(idx[i]);
          if (pad || map_NE[n * E + e]) final_map_NE[n * E + e] = 1;
        }
      }
    }
  }
  for (int64_t i = 0; i < N * E; ++i) final_probs_NE[i] = final_map_NE[i] ? probs_NE[i] : 0.0f;
}

}  // namespace foldmoe::moe
