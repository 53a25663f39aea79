// A read-only memory map of a whole file. Data files (.bin tokens, GPT index caches) are mapped,
// never read into memory: the kernel pages in what a step touches, and several ranks on one host
// share the same pages.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace foldmoe::data {

class MappedFile {
 public:
  // Maps `path` read-only. Returns nullptr (and sets `error` to the system's reason) when the file
  // cannot be opened or mapped; an empty file maps to size() == 0 and data() == nullptr.
  static std::shared_ptr<const MappedFile> open(const std::string& path, std::string* error);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::string path_;
};

}  // namespace foldmoe::data
