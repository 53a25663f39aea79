#include "rl/dynamic_sampling.h"

#include "core/check.h"

namespace foldmoe::rl {

bool keep_group(std::span<const float> metric_values) {
  if (metric_values.size() <= 1) return true;
  for (float v : metric_values)
    if (v != metric_values[0]) return true;
  return false;
}

float dynamic_sampling_value(DynamicSamplingMetric metric, bool acc, float reward) {
  return metric == DynamicSamplingMetric::Acc ? (acc ? 1.0f : 0.0f) : reward;
}

DynamicSampler::DynamicSampler(int64_t prompts_needed, int max_rounds)
    : needed_(prompts_needed), max_rounds_(max_rounds) {
  FOLDMOE_CHECK(prompts_needed >= 1, "dynamic sampling needs P >= 1, got {}", prompts_needed);
}

DynamicSampler::Status DynamicSampler::add_round(std::span<const float> metric_values, int group_size) {
  FOLDMOE_CHECK(!done(), "dynamic sampling: a round was offered after the batch was complete");
  FOLDMOE_CHECK(group_size >= 1 && metric_values.size() % size_t(group_size) == 0,
                "{} values are not whole groups of {}", metric_values.size(), group_size);
  const int32_t round = rounds_++;
  const int64_t groups = int64_t(metric_values.size()) / group_size;
  for (int64_t g = 0; g < groups; ++g) {
    if (keep_group(metric_values.subspan(size_t(g * group_size), size_t(group_size))))
      kept_.push_back(GroupRef{round, g});
    else
      ++dropped_;
  }
  if (done()) return Status::Done;
  if (max_rounds_ <= 0 || rounds_ < max_rounds_) return Status::NeedMore;
  user_error(
      "dynamic sampling: only {} of {} prompts had non-identical outcomes after {} generation rounds; the data "
      "are too hard or too easy for the policy; raise dynamic_sampling.max_rounds (0 = unlimited) or change the "
      "data",
      kept_.size(), needed_, rounds_);
}

std::vector<GroupRef> DynamicSampler::batch() const {
  FOLDMOE_CHECK(done(), "dynamic sampling: batch requested before P groups were kept");
  return {kept_.begin(), kept_.begin() + needed_};
}

}  // namespace foldmoe::rl
