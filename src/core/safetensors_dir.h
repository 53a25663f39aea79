// The weights of a Hugging Face model directory: one `model.safetensors`, or the shards that
// `model.safetensors.index.json` names (its "weight_map" maps each tensor to its file). Every file
// is memory-mapped (core/safetensors_mapped.h) and validated when the directory is opened.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/safetensors_mapped.h"

namespace foldmoe {

class SafetensorsDir {
 public:
  // UserError (H1) when the directory has neither file, the index is not valid JSON of the right
  // form, names a file that does not exist, or disagrees with the files about where a tensor is.
  explicit SafetensorsDir(const std::string& dir);

  struct Located {
    const MappedSafetensors* file = nullptr;
    const SafetensorsEntry* entry = nullptr;
  };
  // file null when the directory has no tensor of that name.
  Located find(const std::string& name) const;
  // Every tensor name, sorted.
  std::vector<std::string> names() const;

 private:
  std::vector<std::unique_ptr<MappedSafetensors>> files_;
  std::map<std::string, Located> tensors_;
};

}  // namespace foldmoe
