// Metric helpers for the per-step RL log (docs/rl.md §14). Policy-loss counters (clip fractions
// upper / lower / dual, DAR zone fractions, mean ratio, mean |log r|) live in PolicyLossCounters
// (policy_loss.h); this file covers the rollout and entropy side. Every summary is a set of
// sums / counts / extremes with add(), so it can be all-reduced across ranks before reading.
#pragma once

#include <cstdint>
#include <limits>
#include <span>

namespace foldmoe::rl {

// Mean and extremes of a masked series (entropies, h̃, temperatures). Empty mask = all valid.
struct SeriesSummary {
  int64_t count = 0;
  int64_t nonpositive = 0;  // values <= 0 (h̃ <= 0 fraction)
  double sum = 0;
  float min = std::numeric_limits<float>::infinity();
  float max = -std::numeric_limits<float>::infinity();
  void add(const SeriesSummary& o);
  double mean() const { return count > 0 ? sum / double(count) : 0.0; }
  double frac_nonpositive() const { return count > 0 ? double(nonpositive) / double(count) : 0.0; }
};
SeriesSummary summarize(std::span<const float> values, std::span<const uint8_t> mask = {});

// Rewards, accuracy, lengths, truncation and overlong penalties of a set of responses.
struct RolloutSummary {
  int64_t responses = 0;
  int64_t correct = 0;
  int64_t truncated = 0;
  int64_t groups = 0;
  int64_t identical_groups = 0;  // groups whose rewards are all equal
  double sum_reward = 0;
  double sum_length = 0;
  int64_t max_length = 0;
  double sum_overlong_penalty = 0;
  void add(const RolloutSummary& o);
  double reward_mean() const { return responses > 0 ? sum_reward / double(responses) : 0.0; }
  double accuracy() const { return responses > 0 ? double(correct) / double(responses) : 0.0; }
  double length_mean() const { return responses > 0 ? sum_length / double(responses) : 0.0; }
  double truncation_rate() const { return responses > 0 ? double(truncated) / double(responses) : 0.0; }
  double identical_group_rate() const { return groups > 0 ? double(identical_groups) / double(groups) : 0.0; }
  double overlong_penalty_mean() const { return responses > 0 ? sum_overlong_penalty / double(responses) : 0.0; }
};
// Responses laid out group after group; penalties may be empty (all 0).
RolloutSummary summarize_rollout(std::span<const float> rewards, std::span<const uint8_t> acc,
                                 std::span<const int64_t> lengths, std::span<const uint8_t> truncated,
                                 std::span<const float> overlong_penalties, int group_size);

}  // namespace foldmoe::rl
