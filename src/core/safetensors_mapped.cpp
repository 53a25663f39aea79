#include "core/safetensors_mapped.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>

#include "core/check.h"

namespace foldmoe {

static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, man = h & 0x3FF;
  if (exp == 0) {  // zero or subnormal: man · 2^-24
    const float v = std::ldexp(float(man), -24);
    return sign ? -v : v;
  }
  if (exp == 31) return std::bit_cast<float>(sign | 0x7F800000u | (man << 13));  // inf or NaN
  return std::bit_cast<float>(sign | ((exp + 112) << 23) | (man << 13));
}

bool readable_as_f32(const std::string& d) {
  return d == "F32" || d == "BF16" || d == "F16";
}

MappedSafetensors::MappedSafetensors(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    user_error("cannot open safetensors file '{}' for reading: {}; check that the path exists and is readable", path,
               std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    user_error("cannot determine the size of safetensors file '{}': {}", path, std::strerror(e));
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      const int e = errno;
      ::close(fd);
      user_error("cannot map safetensors file '{}' ({} bytes): {}", path, size_, std::strerror(e));
    }
    data_ = static_cast<const uint8_t*>(p);
  }
  ::close(fd);  // the mapping keeps the file
  try {
    static const uint8_t empty[1] = {0};
    header_ = parse_safetensors_header(path, data_ ? data_ : empty, size_);
  } catch (...) {
    if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
    throw;
  }
}

MappedSafetensors::~MappedSafetensors() {
  if (data_) ::munmap(const_cast<uint8_t*>(data_), size_);
}

const SafetensorsEntry* MappedSafetensors::find(const std::string& name) const {
  for (const SafetensorsEntry& e : header_.entries)
    if (e.name == name) return &e;
  return nullptr;
}

void MappedSafetensors::read_f32(const SafetensorsEntry& e, int64_t first, int64_t count, float* out) const {
  if (!readable_as_f32(e.dtype))
    user_error(
        "hf error H4: tensor '{}' in '{}' is stored as {}; foldmoe reads F32, BF16 and F16 weights. Save the model "
        "in one of these (e.g. torch_dtype=float32 or bfloat16) and try again.",
        e.name, path_, e.dtype);
  const size_t elem = safetensors_dtype_size(e.dtype);
  const int64_t numel = int64_t((e.end - e.begin) / elem);
  FOLDMOE_CHECK(first >= 0 && count >= 0 && first + count <= numel, "read of [{}, {}) outside tensor {} of {} elements",
                first, first + count, e.name, numel);
  const uint8_t* src = data_ + header_.data_begin + e.begin + size_t(first) * elem;
  if (e.dtype == "F32") {
    std::memcpy(out, src, size_t(count) * 4);
    return;
  }
  const bool bf16 = e.dtype == "BF16";
  for (int64_t i = 0; i < count; ++i) {
    uint16_t h;
    std::memcpy(&h, src + 2 * i, 2);
    out[i] = bf16 ? bf16_to_f32(h) : f16_to_f32(h);
  }
}

}  // namespace foldmoe
