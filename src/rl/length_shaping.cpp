#include "rl/length_shaping.h"

#include <algorithm>

#include "core/check.h"

namespace foldmoe::rl {

OverlongParams overlong_params(const RlConfig& c) {
  return OverlongParams{.enabled = c.reward.overlong.enabled,
                        .l_max = c.max_response_tokens,
                        .l_cache = c.reward.overlong.buffer_tokens,
                        .factor = c.reward.overlong.penalty_factor};
}

float overlong_penalty(int64_t length, const OverlongParams& p) {
  if (!p.enabled) return 0.0f;
  if (length > p.l_max) return float(-p.factor);
  const int64_t l_exp = p.l_max - p.l_cache;
  if (length <= l_exp || p.l_cache <= 0) return 0.0f;
  return float(p.factor * double(l_exp - length) / double(p.l_cache));
}

int64_t loss_token_count(int64_t length, bool truncated, bool overlong_filter) {
  return overlong_filter && truncated ? 0 : length;
}

ResponseReward assemble_reward(float score, int64_t length, const OverlongParams& p) {
  return ResponseReward{.reward = float(double(score) + double(overlong_penalty(length, p))), .acc = score > 0};
}

std::vector<float> place_reward(float reward, int64_t length, int64_t width) {
  FOLDMOE_CHECK(length >= 0 && length <= width, "response length {} outside [0, {}]", length, width);
  std::vector<float> r(size_t(width), 0.0f);
  if (length > 0) r[size_t(length - 1)] = reward;
  return r;
}

}  // namespace foldmoe::rl
