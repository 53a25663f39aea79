#include "rl/step_metrics.h"

#include <algorithm>

#include "core/check.h"

namespace foldmoe::rl {

void SeriesSummary::add(const SeriesSummary& o) {
  count += o.count;
  nonpositive += o.nonpositive;
  sum += o.sum;
  min = std::min(min, o.min);
  max = std::max(max, o.max);
}

SeriesSummary summarize(std::span<const float> values, std::span<const uint8_t> mask) {
  FOLDMOE_CHECK(mask.empty() || mask.size() == values.size(), "mask size");
  SeriesSummary s;
  for (size_t j = 0; j < values.size(); ++j) {
    if (!mask.empty() && !mask[j]) continue;
    const float v = values[j];
    ++s.count;
    s.nonpositive += v <= 0;
    s.sum += v;
    s.min = std::min(s.min, v);
    s.max = std::max(s.max, v);
  }
  return s;
}

void RolloutSummary::add(const RolloutSummary& o) {
  responses += o.responses;
  correct += o.correct;
  truncated += o.truncated;
  groups += o.groups;
  identical_groups += o.identical_groups;
  sum_reward += o.sum_reward;
  sum_length += o.sum_length;
  max_length = std::max(max_length, o.max_length);
  sum_overlong_penalty += o.sum_overlong_penalty;
}

RolloutSummary summarize_rollout(std::span<const float> rewards, std::span<const uint8_t> acc,
                                 std::span<const int64_t> lengths, std::span<const uint8_t> truncated,
                                 std::span<const float> overlong_penalties, int group_size) {
  const size_t n = rewards.size();
  FOLDMOE_CHECK(acc.size() == n && lengths.size() == n && truncated.size() == n, "rollout summary sizes");
  FOLDMOE_CHECK(overlong_penalties.empty() || overlong_penalties.size() == n, "penalty size");
  FOLDMOE_CHECK(group_size >= 1 && n % size_t(group_size) == 0, "not whole groups");
  RolloutSummary s;
  s.responses = int64_t(n);
  for (size_t i = 0; i < n; ++i) {
    s.correct += acc[i] != 0;
    s.truncated += truncated[i] != 0;
    s.sum_reward += rewards[i];
    s.sum_length += double(lengths[i]);
    s.max_length = std::max(s.max_length, lengths[i]);
    if (!overlong_penalties.empty()) s.sum_overlong_penalty += overlong_penalties[i];
  }
  for (size_t g = 0; g < n; g += size_t(group_size)) {
    ++s.groups;
    bool same = true;
    for (size_t i = g; i < g + size_t(group_size); ++i) same = same && rewards[i] == rewards[g];
    s.identical_groups += same;
  }
  return s;
}

}  // namespace foldmoe::rl
