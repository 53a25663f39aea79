// The header of a safetensors file, parsed and validated without touching the tensor data: the
// whole-file reader (core/safetensors.h) and the memory-mapped reader (core/safetensors_mapped.h)
// share it, so both refuse exactly the same damaged files (rule C4).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace foldmoe {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as spelt in the file: F32, BF16, F16, ...
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range relative to the start of the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> entries;  // in the header's key order
  std::map<std::string, std::string> metadata;
  uint64_t data_begin = 0;  // file offset of the data section
};

// Bytes per element of a safetensors dtype spelling; 0 for a spelling the format does not define.
size_t safetensors_dtype_size(const std::string& dtype);

// Validates `bytes` (the first `size` bytes are the whole file `path`): header length, JSON,
// duplicate names, metadata, every entry's dtype, shape and byte range, and that the ranges tile
// the data section. UserError (C4) naming the file and the tensor on any problem.
SafetensorsHeader parse_safetensors_header(const std::string& path, const uint8_t* bytes, uint64_t size);

// The UserError of a damaged file (C4), for checks made after the header was parsed.
[[noreturn]] void safetensors_corrupt(const std::string& path, const std::string& problem);

}  // namespace foldmoe
