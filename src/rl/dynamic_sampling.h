// DAPO dynamic sampling (docs/rl.md §4.3) as pure bookkeeping over reward vectors: rounds of
// generated groups are offered in prompt order, groups whose metric values are all equal are
// dropped, and the first P kept groups form the training batch. After max_rounds rounds (> 0)
// without P kept groups the run stops with the named error of the spec. The state is per RL step.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe::rl {

// Keep a group iff n = 1 or its metric values are not all equal (population std > 0).
bool keep_group(std::span<const float> metric_values);

// Metric values of one response per the configured metric: acc (1 / 0) or the reward R_i
// (including the overlong penalty).
float dynamic_sampling_value(DynamicSamplingMetric metric, bool acc, float reward);

struct GroupRef {
  int32_t round = 0;  // 0-based generation round of this RL step
  int64_t group = 0;  // index of the group inside its round (prompt order)
  bool operator==(const GroupRef&) const = default;
};

class DynamicSampler {
 public:
  // prompts_needed = P; max_rounds <= 0 = unlimited.
  DynamicSampler(int64_t prompts_needed, int max_rounds);

  enum class Status { NeedMore, Done };
  // Offer one generation round: metric values of its groups, group after group (n per group).
  // Returns Done once P groups are kept, NeedMore if another round is allowed, and throws UserError
  // ("dynamic sampling: only K of P prompts had non-identical outcomes after R generation rounds; ...")
  // when the round limit is reached.
  Status add_round(std::span<const float> metric_values, int group_size);

  bool done() const { return int64_t(kept_.size()) >= needed_; }
  int rounds() const { return rounds_; }
  int64_t kept_count() const { return int64_t(kept_.size()); }
  int64_t dropped_count() const { return dropped_; }
  // The training batch: the first P kept groups (the surplus is discarded). Valid once done().
  std::vector<GroupRef> batch() const;

 private:
  int64_t needed_;
  int max_rounds_;
  int rounds_ = 0;
  int64_t dropped_ = 0;
  std::vector<GroupRef> kept_;
};

}  // namespace foldmoe::rl
