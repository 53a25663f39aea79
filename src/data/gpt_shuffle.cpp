#include "data/gpt_shuffle.h"

#include <cstddef>
#include <utility>

namespace foldmoe::data {
namespace {
constexpr uint64_t kGolden = 0x9E3779B97F4A7C15ull;
}

uint64_t mix64(uint64_t z) {
  z += kGolden;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t shuffle_key(uint64_t seed, int split, int64_t epoch, ShufflePurpose purpose) {
  return mix64(mix64(mix64(mix64(seed) ^ static_cast<uint64_t>(split)) ^ static_cast<uint64_t>(epoch)) ^
               static_cast<uint64_t>(purpose));
}

std::vector<int64_t> keyed_permutation(int64_t n, uint64_t key) {
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  uint64_t state = key;
  const auto next = [&state] {
    const uint64_t r = mix64(state);
    state += kGolden;
    return r;
  };
  for (int64_t i = n - 1; i >= 1; --i) {
    const uint64_t m = static_cast<uint64_t>(i) + 1;
    const uint64_t threshold = (0 - m) % m;
    uint64_t r = next();
    while (r < threshold) r = next();
    std::swap(p[i], p[static_cast<int64_t>(r % m)]);
  }
  return p;
}

}  // namespace foldmoe::data
