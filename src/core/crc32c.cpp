#include "core/crc32c.h"

#include "core/crc_table.h"

namespace foldmoe {

namespace {
constexpr std::array<uint32_t, 256> kTable = reflected_crc_table(0x82F63B78u);
}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  return reflected_crc(kTable, data, n, crc);
}

uint32_t masked_crc32c(const void* data, size_t n) {
  const uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

}  // namespace foldmoe
