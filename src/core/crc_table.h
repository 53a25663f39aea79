// The byte-wise lookup table of a reflected CRC-32 polynomial, built at compile time; crc32.cpp
// (IEEE) and crc32c.cpp (Castagnoli) differ only in the polynomial.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

namespace foldmoe {

constexpr std::array<uint32_t, 256> reflected_crc_table(uint32_t polynomial) {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? polynomial ^ (c >> 1) : c >> 1;
    t[i] = c;
  }
  return t;
}

// Continues a running reflected CRC over `n` bytes with `table`.
inline uint32_t reflected_crc(const std::array<uint32_t, 256>& table, const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = table[(crc ^ p[i]) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace foldmoe
