// The permutations of the GPT dataset (docs/data.md "Shuffling"): small, fixed and documented so an
// independent model (tests/e2e/gpt_reference.py) can reproduce them exactly.
//
//   mix64(z):  z += 0x9E3779B97F4A7C15; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
//              z = (z ^ z >> 27) * 0x94D049BB133111EB; return z ^ z >> 31     (SplitMix64's step)
//   key(seed, split, epoch, purpose) = mix64(mix64(mix64(mix64(seed) ^ split) ^ epoch) ^ purpose)
//   stream: state = key; next() = mix64(state), then state += 0x9E3779B97F4A7C15
//   below(m): draw r = next() until r >= (2^64 - m) mod m; return r mod m   (unbiased)
//   permutation(n): p = 0..n-1; for i = n-1 down to 1: swap(p[i], p[below(i + 1)])  (Fisher-Yates)
#pragma once

#include <cstdint>
#include <vector>

namespace foldmoe::data {

enum class ShufflePurpose : uint64_t { Documents = 1, Samples = 2 };

uint64_t mix64(uint64_t z);
uint64_t shuffle_key(uint64_t seed, int split, int64_t epoch, ShufflePurpose purpose);
// A uniformly random permutation of 0 .. n-1 drawn from the stream of `key`.
std::vector<int64_t> keyed_permutation(int64_t n, uint64_t key);

}  // namespace foldmoe::data
