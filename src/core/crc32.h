// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): the same value as zlib's crc32 and
// Python's zlib.crc32, so checkpoint checksums can be verified with standard tools.
#pragma once

#include <cstddef>
#include <cstdint>

namespace foldmoe {

// Continues a running checksum: crc32(b, nb, crc32(a, na)) == crc32 of a followed by b.
uint32_t crc32(const void* data, size_t n, uint32_t crc = 0);

}  // namespace foldmoe
