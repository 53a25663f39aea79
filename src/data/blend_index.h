// Megatron's BlendedDataset assignment: with weights w normalised to sum 1, blended sample i goes
// to the dataset d with the largest w_d * max(i, 1) - c_d (ties to the lowest d), where c_d counts
// the samples already given to d; it is that dataset's sample c_d. The assignment of sample i
// depends only on samples 0..i-1, so it is extended on demand and never depends on how many
// samples a run will ask for. Thread-safe.
#pragma once

#include <cstdint>
#include <mutex>
#include <utility>
#include <vector>

namespace foldmoe::data {

class BlendIndex {
 public:
  // `weights` are normalised here; they must be finite and > 0 (checked by the caller, rule D9).
  explicit BlendIndex(std::vector<double> weights);

  // (dataset, that dataset's sample index) of blended sample i.
  std::pair<int, int64_t> locate(int64_t i) const;
  const std::vector<double>& weights() const { return weights_; }

 private:
  static constexpr int64_t kBlock = 1024;  // a checkpoint of the counts every kBlock samples
  void extend_to(int64_t i) const;         // mutex_ held

  std::vector<double> weights_;
  mutable std::mutex mutex_;
  mutable std::vector<uint16_t> dataset_;      // dataset of each sample built so far
  mutable std::vector<int64_t> block_counts_;  // counts c at the start of each block (K per block)
  mutable std::vector<int64_t> counts_;        // counts after dataset_.size() samples
};

}  // namespace foldmoe::data
