#include "core/crc32.h"

#include "core/crc_table.h"

namespace foldmoe {

namespace {
constexpr std::array<uint32_t, 256> kTable = reflected_crc_table(0xEDB88320u);
}  // namespace

uint32_t crc32(const void* data, size_t n, uint32_t crc) {
  return reflected_crc(kTable, data, n, crc);
}

}  // namespace foldmoe
