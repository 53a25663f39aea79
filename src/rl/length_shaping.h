// DAPO length shaping and reward assembly (docs/rl.md §4.4, §4.5, §6.4).
#pragma once

#include <cstdint>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

struct OverlongParams {
  bool enabled = true;
  int64_t l_max = 10240;    // L_max
  int64_t l_cache = 4096;   // L_cache
  double factor = 1.0;      // f
};
OverlongParams overlong_params(const RlConfig& c);

// Soft overlong punishment R_len(L) = min(0, −f·(L − L_exp)/L_cache), L_exp = L_max − L_cache, and
// −f beyond L_max. 0 when disabled. Computed in binary64, returned as fp32 (E12 is exact).
float overlong_penalty(int64_t length, const OverlongParams& p);

// Overlong filtering (docs/rl.md §4.5): the number of loss tokens of a response (its valid length, or 0 when
// the filter is on and the response was truncated).
int64_t loss_token_count(int64_t length, bool truncated, bool overlong_filter);

struct ResponseReward {
  float reward = 0;  // R_i = score + R_len
  bool acc = false;  // correctness, independent of the penalty
};
// score is ±1 from the verifier (acc = score > 0).
ResponseReward assemble_reward(float score, int64_t length, const OverlongParams& p);

// Token-level rewards of a response of valid length L in a row of `width` positions: R at position
// L − 1 (the EOS if present, else the last generated token), 0 elsewhere. L = 0 gives all zeros.
std::vector<float> place_reward(float reward, int64_t length, int64_t width);

}  // namespace foldmoe::rl
