#include "core/rng.h"

#include <cmath>

namespace foldmoe {

namespace {
constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;

inline void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = uint64_t(a) * uint64_t(b);
  hi = uint32_t(p >> 32);
  lo = uint32_t(p);
}
}  // namespace

Philox4 philox4x32(Philox4 c, std::array<uint32_t, 2> k) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c[0], hi0, lo0);
    mulhilo(kM1, c[2], hi1, lo1);
    c = {hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0};
    k[0] += kW0;
    k[1] += kW1;
  }
  return c;
}

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : s) {
    h ^= ch;
    h *= 1099511628211ull;
  }
  return h;
}

CounterRng::CounterRng(uint64_t seed, uint64_t tag, uint64_t sub) : sub_(sub) {
  // Mix seed and tag so that nearby seeds and tags give unrelated keys.
  const uint64_t mixed = seed * 0x9E3779B97F4A7C15ull ^ tag;
  key_ = {uint32_t(mixed), uint32_t(mixed >> 32)};
}

Philox4 CounterRng::bits(uint64_t index) const {
  return philox4x32({uint32_t(index), uint32_t(index >> 32), uint32_t(sub_), uint32_t(sub_ >> 32)}, key_);
}

double CounterRng::uniform(uint64_t index) const {
  const Philox4 r = bits(index);
  const uint64_t x = (uint64_t(r[0]) << 21) ^ uint64_t(r[1]);  // 53 bits
  return (double(x & ((1ull << 53) - 1)) + 0.5) / double(1ull << 53);
}

double CounterRng::normal(uint64_t index) const {
  const Philox4 r = bits(index);
  const double u1 = (double(r[0]) + 0.5) / 4294967296.0;
  const double u2 = (double(r[1]) + 0.5) / 4294967296.0;
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * M_PI * u2);
}

}  // namespace foldmoe
