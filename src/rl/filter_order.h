// Prefix queries on the sampler's filter order without sorting the vocabulary.
//
// The filter order (docs/rollout.md, sampling.h) ranks tokens by sampling weight, descending, then
// by lower id. Top-k, top-p and the inverse-CDF draw each ask for one token of that order: the
// first at which a running total (a count, or the weight) reaches a threshold. FilterOrder answers
// that in expected O(V): index() puts every token with weight > 0 into one of kBuckets buckets by
// the bit pattern of its weight (monotone in the weight, so a bucket never holds a token that a
// later bucket's token precedes), first() walks the bucket totals to the bucket where the total
// crosses and sorts only that bucket's tokens. Bucket masses are summed in id order, so a threshold
// within round-off (~1e-16 relative) of a boundary may land on the neighbouring token of an
// exact walk; the result is a fixed function of the weights, so draws stay reproducible.
#pragma once

#include <cstdint>
#include <vector>

namespace foldmoe::rl {

class FilterOrder {
 public:
  // w: V weights ≥ 0 (zero = never drawn); kept by pointer until the next index().
  void index(const double* w, int64_t V);

  struct Hit {
    int32_t token = -1;       // the first token of the order at which the running total crosses
    double mass_through = 0;  // Σ w of the order's prefix up to and including `token`
  };
  // by_count: the running total counts tokens; else it sums weights. inclusive: crossing means
  // total ≥ threshold, else total > threshold. A threshold the whole order does not cross
  // (round-off) gives the last token of the order.
  Hit first(double threshold, bool by_count, bool inclusive);

  // Σ w, summed bucket by bucket.
  double total_mass() const { return total_; }

  // Whether a comes before b in the filter order.
  bool precedes(int32_t a, int32_t b) const { return w_[a] > w_[b] || (w_[a] == w_[b] && a < b); }

 private:
  static constexpr int kBuckets = 512;
  const double* w_ = nullptr;
  int64_t V_ = 0;
  double total_ = 0;
  std::vector<uint16_t> bucket_;  // per token; kBuckets = weight 0
  std::vector<double> mass_;      // per bucket
  std::vector<int64_t> count_;    // per bucket
  std::vector<int32_t> members_;  // scratch: the crossing bucket's tokens
};

}  // namespace foldmoe::rl
