// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) and TensorFlow's "masked" form, which the
// TFRecord framing of TensorBoard event files uses for its length and payload checksums.
#pragma once

#include <cstddef>
#include <cstdint>

namespace foldmoe {

// Continues a running checksum: crc32c(b, nb, crc32c(a, na)) == crc32c of a followed by b.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);

// ((crc >> 15) | (crc << 17)) + 0xa282ead8: TFRecord stores masked CRCs so that a CRC of data that
// itself contains CRCs stays well distributed.
uint32_t masked_crc32c(const void* data, size_t n);

}  // namespace foldmoe
