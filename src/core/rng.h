// Counter-based random numbers (Philox4x32-10). A draw is a pure function of (key, counter), so
// a parameter's initial value depends only on (seed, parameter name, global element index) and
// never on the layout or on the order in which ranks initialise (docs/design.md §3 rule 3).
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace foldmoe {

using Philox4 = std::array<uint32_t, 4>;

// One Philox4x32-10 block: 4 random 32-bit words for counter `ctr` under key `key`.
Philox4 philox4x32(Philox4 ctr, std::array<uint32_t, 2> key);

// 64-bit FNV-1a of a string: turns a parameter name into part of the key.
uint64_t fnv1a64(std::string_view s);

// A stream of draws keyed by (seed, tag). Element i of the stream uses counter (i_lo, i_hi, c2, c3),
// so any element can be produced independently of the others.
class CounterRng {
 public:
  CounterRng(uint64_t seed, uint64_t tag, uint64_t sub = 0);
  CounterRng(uint64_t seed, std::string_view name, uint64_t sub = 0) : CounterRng(seed, fnv1a64(name), sub) {}

  Philox4 bits(uint64_t index) const;
  // Uniform in (0, 1), strictly positive (safe for log).
  double uniform(uint64_t index) const;
  // Standard normal via Box-Muller from the first two words of block `index`.
  double normal(uint64_t index) const;

 private:
  std::array<uint32_t, 2> key_;
  uint64_t sub_;
};

}  // namespace foldmoe
