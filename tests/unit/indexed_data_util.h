// Helpers of the indexed-dataset tests: a scratch folder and small datasets written to it.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "data/indexed_dataset.h"

namespace foldmoe::data::testing {

namespace fs = std::filesystem;

// One scratch directory per test process, removed at exit.
inline std::string scratch_path(const std::string& name) {
  struct Dir {
    fs::path path = fs::temp_directory_path() / ("foldmoe_idx_test_" + std::to_string(::getpid()));
    ~Dir() {
      std::error_code ec;
      fs::remove_all(path, ec);
    }
  };
  static Dir dir;
  fs::create_directories(dir.path);
  return (dir.path / name).string();
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

inline void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// Writes documents to PREFIX.bin/.idx and returns the prefix.
inline std::string write_dataset(const std::string& name, const std::vector<std::vector<int32_t>>& docs,
                                 TokenDType dtype = TokenDType::UInt16) {
  const std::string prefix = scratch_path(name);
  IndexedDatasetWriter w(prefix, dtype);
  for (const auto& d : docs) w.add_document(d);
  w.finalize();
  return prefix;
}

// Documents whose tokens say where they come from: document d holds lengths[d] tokens
// d * 1000 + 0, d * 1000 + 1, ... (so a sample's tokens identify their document and offset).
inline std::vector<std::vector<int32_t>> labelled_documents(const std::vector<int>& lengths) {
  std::vector<std::vector<int32_t>> docs;
  for (size_t d = 0; d < lengths.size(); ++d) {
    docs.emplace_back();
    for (int i = 0; i < lengths[d]; ++i) docs.back().push_back(static_cast<int32_t>(d * 1000 + i));
  }
  return docs;
}

}  // namespace foldmoe::data::testing
