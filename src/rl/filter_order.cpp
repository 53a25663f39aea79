#include "rl/filter_order.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace foldmoe::rl {

void FilterOrder::index(const double* w, int64_t V) {
  w_ = w, V_ = V;
  bucket_.resize(size_t(V));
  mass_.assign(kBuckets, 0.0);
  count_.assign(kBuckets, 0);
  // Positive doubles order as their bit patterns: buckets split [min key, max key] linearly, which
  // is about logarithmic in the weight (a few buckets per binade).
  uint64_t kmin = UINT64_MAX, kmax = 0;
  for (int64_t v = 0; v < V; ++v)
    if (w[v] > 0) {
      const uint64_t key = std::bit_cast<uint64_t>(w[v]);
      kmin = std::min(kmin, key), kmax = std::max(kmax, key);
    }
  const double scale = kmax >= kmin ? double(kBuckets) / (double(kmax - kmin) + 1.0) : 0.0;
  for (int64_t v = 0; v < V; ++v) {
    if (!(w[v] > 0)) {
      bucket_[size_t(v)] = kBuckets;
      continue;
    }
    // Non-increasing in the key (conversion, scaling and truncation are all monotone).
    const int b = std::min(kBuckets - 1, int(double(kmax - std::bit_cast<uint64_t>(w[v])) * scale));
    bucket_[size_t(v)] = uint16_t(b);
    mass_[size_t(b)] += w[v];
    ++count_[size_t(b)];
  }
  total_ = 0;
  for (double m : mass_) total_ += m;
}

FilterOrder::Hit FilterOrder::first(double threshold, bool by_count, bool inclusive) {
  const auto crosses = [&](double total) { return inclusive ? total >= threshold : total > threshold; };
  // 1. The bucket where the running total crosses (else the last non-empty one: round-off).
  double mass = 0, total = 0;  // of the buckets before b
  int b = 0, last = -1;
  for (; b < kBuckets; ++b) {
    if (count_[size_t(b)] == 0) continue;
    last = b;
    const double t = total + (by_count ? double(count_[size_t(b)]) : mass_[size_t(b)]);
    if (crosses(t)) break;
    total = t;
    mass += mass_[size_t(b)];
  }
  if (last < 0) return {};
  if (b == kBuckets) {  // never crossed: walk the last bucket to its end
    b = last;
    total -= by_count ? double(count_[size_t(b)]) : mass_[size_t(b)];
    mass -= mass_[size_t(b)];
  }
  // 2. That bucket in the filter order, walked exactly.
  members_.clear();
  for (int64_t v = 0; v < V_; ++v)
    if (bucket_[size_t(v)] == b) members_.push_back(int32_t(v));
  std::sort(members_.begin(), members_.end(), [&](int32_t x, int32_t y) { return precedes(x, y); });
  for (int32_t v : members_) {
    total += by_count ? 1.0 : w_[v];
    mass += w_[v];
    if (crosses(total)) return {v, mass};
  }
  return {members_.back(), mass};  // round-off: the bucket's total crossed, its members' sum did not
}

}  // namespace foldmoe::rl
