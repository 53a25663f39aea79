#include "core/safetensors_sharded_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/safetensors_mapped.h"

namespace foldmoe {

namespace {
void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::pwrite(fd, p, n, off_t(offset));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) user_error("failed while writing '{}': {}", path, std::strerror(errno));
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}
}  // namespace

ShardedSafetensorsWriter::ShardedSafetensorsWriter(std::string dir, std::vector<PlannedTensor> tensors,
                                                   std::string dtype, uint64_t max_shard_bytes)
    : dir_(std::move(dir)), dtype_(std::move(dtype)) {
  FOLDMOE_CHECK(dtype_ == "F32" || dtype_ == "BF16", "sharded safetensors dtype {} (F32 or BF16)", dtype_);
  elem_ = dtype_ == "F32" ? 4 : 2;
  std::sort(tensors.begin(), tensors.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
  std::vector<std::vector<size_t>> members;
  uint64_t used = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    const uint64_t n = uint64_t(shape_numel(tensors[i].shape)) * elem_;
    if (members.empty() || (used > 0 && used + n > max_shard_bytes)) {
      members.emplace_back();
      used = 0;
    }
    members.back().push_back(i);
    used += n;
  }
  const int total = int(members.size());
  for (int f = 0; f < total; ++f) {
    File file;
    file.name = fmt::format("model-{:05d}-of-{:05d}.safetensors", f + 1, total);
    nlohmann::json header = nlohmann::json::object();
    for (size_t i : members[size_t(f)]) {
      const uint64_t n = uint64_t(shape_numel(tensors[i].shape)) * elem_;
      header[tensors[i].name] = {
          {"dtype", dtype_}, {"shape", tensors[i].shape}, {"data_offsets", {file.data_bytes, file.data_bytes + n}}};
      tensors_.push_back({tensors[i], f, file.data_bytes});
      file.data_bytes += n;
    }
    header["__metadata__"] = {{"format", "pt"}};  // transformers requires it
    file.header = header.dump();
    file.header.append((8 - (8 + file.header.size()) % 8) % 8, ' ');
    files_.push_back(std::move(file));
  }
  fds_.assign(files_.size(), -1);
}

ShardedSafetensorsWriter::~ShardedSafetensorsWriter() {
  for (int fd : fds_)
    if (fd >= 0) ::close(fd);
}

uint64_t ShardedSafetensorsWriter::total_bytes() const {
  uint64_t n = 0;
  for (const File& f : files_) n += f.data_bytes;
  return n;
}

int ShardedSafetensorsWriter::fd(int file) const {
  int& fd = fds_[size_t(file)];
  if (fd < 0) {
    const std::string path = dir_ + "/" + files_[size_t(file)].name;
    fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) user_error("cannot open '{}' for writing: {}", path, std::strerror(errno));
  }
  return fd;
}

void ShardedSafetensorsWriter::create_files() const {
  for (const File& f : files_) {
    const std::string path = dir_ + "/" + f.name;
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) user_error("cannot create '{}': {}; check that the directory is writable", path, std::strerror(errno));
    unsigned char len[8];
    const uint64_t n = f.header.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    pwrite_all(fd, len, 8, 0, path);
    pwrite_all(fd, f.header.data(), f.header.size(), 8, path);
    if (::ftruncate(fd, off_t(8 + f.header.size() + f.data_bytes)) != 0) {
      const int e = errno;
      ::close(fd);
      user_error("cannot size '{}' to {} bytes: {}", path, 8 + f.header.size() + f.data_bytes, std::strerror(e));
    }
    ::close(fd);
  }
}

const ShardedSafetensorsWriter::Placed& ShardedSafetensorsWriter::placed(const std::string& name) const {
  const auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                                   [](const Placed& p, const std::string& n) { return p.t.name < n; });
  FOLDMOE_CHECK(it != tensors_.end() && it->t.name == name, "tensor {} is not in the write plan", name);
  return *it;
}

void ShardedSafetensorsWriter::write(const std::string& name, int64_t first, const float* values, int64_t count) const {
  const Placed& p = placed(name);
  FOLDMOE_CHECK(first >= 0 && first + count <= shape_numel(p.t.shape), "write of [{}, {}) outside {}", first,
                first + count, name);
  const File& f = files_[size_t(p.file)];
  const uint64_t at = 8 + f.header.size() + p.begin + uint64_t(first) * elem_;
  const std::string path = dir_ + "/" + f.name;
  if (elem_ == 4) {
    pwrite_all(fd(p.file), values, size_t(count) * 4, at, path);
    return;
  }
  std::vector<uint16_t> half(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) half[size_t(i)] = f32_to_bf16(values[i]);
  pwrite_all(fd(p.file), half.data(), half.size() * 2, at, path);
}

void ShardedSafetensorsWriter::write_index() const {
  nlohmann::json j;
  j["metadata"] = {{"total_size", total_bytes()}};
  j["weight_map"] = nlohmann::json::object();
  for (const Placed& p : tensors_) j["weight_map"][p.t.name] = files_[size_t(p.file)].name;
  const std::string path = dir_ + "/model.safetensors.index.json";
  std::ofstream out(path);
  out << j.dump(2) << "\n";
  out.flush();
  if (!out) user_error("failed while writing '{}': {}", path, std::strerror(errno));
}

uint64_t parse_byte_size(const std::string& text, const std::string& option) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  std::string unit = text.substr(i);
  for (char& c : unit) c = char(std::toupper(static_cast<unsigned char>(c)));
  const std::map<std::string, uint64_t> units = {{"", 1},          {"B", 1},           {"KB", 1000},
                                                 {"MB", 1000000},  {"GB", 1000000000}, {"KIB", 1024},
                                                 {"MIB", 1 << 20}, {"GIB", 1 << 30}};
  const auto u = units.find(unit);
  if (i == 0 || i > 15 || u == units.end() || std::stoull(text.substr(0, i)) == 0)
    user_error("{} = '{}' is not a size: write a positive number with an optional unit, e.g. 5GB, 500MB, 64KB", option,
               text);
  return std::stoull(text.substr(0, i)) * u->second;
}

}  // namespace foldmoe
