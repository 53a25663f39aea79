// safetensors files (https://huggingface.co/docs/safetensors): 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the raw
// little-endian data. Used for checkpoints and reference dumps.
#pragma once

#include <map>
#include <string>

#include "core/tensor.h"

namespace foldmoe {

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Writes to `path` (the caller handles temporary names and renames).
void write_safetensors(const std::string& path, const SafetensorsFile& f);
// Reads and validates (header bounds, offsets, dtypes, sizes). UserError naming the file on any
// corruption or truncation.
SafetensorsFile read_safetensors(const std::string& path);

}  // namespace foldmoe
