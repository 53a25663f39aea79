// A safetensors file mapped read-only: the header is validated once (the same checks as
// read_safetensors), then any tensor, or any run of its elements, is converted to fp32 straight
// from the mapping. Only the pages a caller touches are read from disk, so a rank that needs a
// slice of a model's tensors never holds the rest; ranks on one host share the page cache.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/bf16.h"
#include "core/safetensors_header.h"

namespace foldmoe {

class MappedSafetensors {
 public:
  // Maps and validates `path`; UserError naming the file when it cannot be opened or is damaged (C4).
  explicit MappedSafetensors(const std::string& path);
  ~MappedSafetensors();
  MappedSafetensors(const MappedSafetensors&) = delete;
  MappedSafetensors& operator=(const MappedSafetensors&) = delete;

  const std::string& path() const { return path_; }
  const SafetensorsHeader& header() const { return header_; }
  const SafetensorsEntry* find(const std::string& name) const;

  // Elements [first, first + count) of `e` in row-major order, converted to fp32. The dtype must be
  // F32, BF16 or F16 (rule H4, naming the file and the tensor).
  void read_f32(const SafetensorsEntry& e, int64_t first, int64_t count, float* out) const;

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  SafetensorsHeader header_;
};

// True when fp32 reads of `dtype` are supported (F32, BF16, F16).
bool readable_as_f32(const std::string& dtype);

// Conversion of one F16 element (bf16's are in core/bf16.h).
float f16_to_f32(uint16_t h);

}  // namespace foldmoe
