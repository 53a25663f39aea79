#include "data/blend_index.h"

#include "core/check.h"

namespace foldmoe::data {

BlendIndex::BlendIndex(std::vector<double> weights) : weights_(std::move(weights)) {
  FOLDMOE_CHECK(!weights_.empty() && weights_.size() < 65536, "{} blend weights", weights_.size());
  double sum = 0;
  for (double w : weights_) {
    FOLDMOE_CHECK(w > 0, "blend weight {}", w);
    sum += w;
  }
  for (double& w : weights_) w /= sum;
  counts_.assign(weights_.size(), 0);
}

void BlendIndex::extend_to(int64_t i) const {
  const size_t K = weights_.size();
  while (static_cast<int64_t>(dataset_.size()) <= i) {
    const int64_t s = static_cast<int64_t>(dataset_.size());
    if (s % kBlock == 0) block_counts_.insert(block_counts_.end(), counts_.begin(), counts_.end());
    const double x = s < 1 ? 1.0 : static_cast<double>(s);
    size_t best = 0;
    double best_error = weights_[0] * x - static_cast<double>(counts_[0]);
    for (size_t d = 1; d < K; ++d) {
      const double error = weights_[d] * x - static_cast<double>(counts_[d]);
      if (error > best_error) {
        best_error = error;
        best = d;
      }
    }
    dataset_.push_back(static_cast<uint16_t>(best));
    ++counts_[best];
  }
}

std::pair<int, int64_t> BlendIndex::locate(int64_t i) const {
  FOLDMOE_CHECK(i >= 0, "blended sample {}", i);
  const size_t K = weights_.size();
  std::lock_guard<std::mutex> lock(mutex_);
  extend_to(i);
  const int d = dataset_[i];
  const int64_t block = i / kBlock;
  int64_t c = block_counts_[block * K + d];
  for (int64_t j = block * kBlock; j < i; ++j) c += dataset_[j] == d;
  return {d, c};
}

}  // namespace foldmoe::data
