#include "data/synthetic_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace foldmoe::data {

SyntheticSource::SyntheticSource(uint64_t seed, std::vector<std::string> tasks)
    : corpus_(seed, tasks), heldout_(heldout_seed(seed), tasks), tokenizer_(load_tokenizer("char")) {}

Batch SyntheticSource::global_batch(int64_t step, int gbs, int seq_len) const {
  return corpus_.global_batch(step, gbs, seq_len);
}

Batch SyntheticSource::validation_batch(int64_t index, int gbs, int seq_len) const {
  return heldout_.global_batch(index, gbs, seq_len);
}

std::string SyntheticSource::fingerprint() const {
  std::vector<std::string> names;
  for (Task t : corpus_.tasks()) names.emplace_back(task_name(t));
  return fmt::format("synthetic tasks={} seed={}", fmt::join(names, ","), corpus_.seed());
}

std::string SyntheticSource::describe() const {
  return fmt::format("synthetic tasks ({} tasks), tokenizer {}", corpus_.tasks().size(), tokenizer_->describe());
}

}  // namespace foldmoe::data
