// Streaming writer of a sharded safetensors model (the Hugging Face layout): files
// `model-0000k-of-0000n.safetensors` and `model.safetensors.index.json` (metadata.total_size and
// weight_map). The plan (which tensor goes to which file at which offset) is a pure function of the
// tensor list, so every process of a distributed job computes the same plan: one process creates
// the files (headers written, data sized), then any process writes any run of any tensor's
// elements in place (pwrite), so no process ever holds more than the slices it owns.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace foldmoe {

struct PlannedTensor {
  std::string name;
  Shape shape;
};

class ShardedSafetensorsWriter {
 public:
  // dtype "F32" or "BF16" (round to nearest even). Tensors are stored sorted by name; a new file
  // starts when the next tensor would take the current one past `max_shard_bytes` (a tensor larger
  // than that gets a file of its own).
  ShardedSafetensorsWriter(std::string dir, std::vector<PlannedTensor> tensors, std::string dtype,
                           uint64_t max_shard_bytes);
  ~ShardedSafetensorsWriter();
  ShardedSafetensorsWriter(const ShardedSafetensorsWriter&) = delete;
  ShardedSafetensorsWriter& operator=(const ShardedSafetensorsWriter&) = delete;

  // One process: writes every file's header and sizes its data (zeros until written).
  void create_files() const;
  // Any process, after create_files: elements [first, first + count) of tensor `name`.
  void write(const std::string& name, int64_t first, const float* values, int64_t count) const;
  // One process: model.safetensors.index.json.
  void write_index() const;

  int num_files() const { return int(files_.size()); }
  uint64_t total_bytes() const;

 private:
  struct Placed {
    PlannedTensor t;
    int file = 0;
    uint64_t begin = 0;  // data-section offset
  };
  struct File {
    std::string name;
    std::string header;  // padded JSON
    uint64_t data_bytes = 0;
  };
  const Placed& placed(const std::string& name) const;
  int fd(int file) const;

  std::string dir_, dtype_;
  size_t elem_ = 4;
  std::vector<Placed> tensors_;
  std::vector<File> files_;
  mutable std::vector<int> fds_;
};

// "5GB", "500MB", "64KB", "1000" (bytes; decimal units as Hugging Face uses them). UserError naming
// the option otherwise.
uint64_t parse_byte_size(const std::string& text, const std::string& option);

}  // namespace foldmoe
