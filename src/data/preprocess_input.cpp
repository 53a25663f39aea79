#include "data/preprocess_input.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/check.h"

namespace foldmoe::data {
namespace fs = std::filesystem;

struct InputReader::Gz {
  gzFile f = nullptr;
  ~Gz() {
    if (f != nullptr) gzclose(f);
  }
};

namespace {

[[noreturn]] void unreadable(const std::string& path, const std::string& why) {
  user_error("data error D14: cannot read {}: {}.\n  fix: check the --input path{}", path, why,
             path.ends_with(".gz") ? " and that the file is a complete gzip file (gzip -t)" : "");
}

}  // namespace

InputReader::InputReader(const std::string& input, bool per_file, bool skip_blank_lines)
    : per_file_(per_file), skip_blank_(skip_blank_lines) {
  std::error_code ec;
  if (!fs::exists(input, ec)) unreadable(input, "no such file or folder");
  if (per_file && fs::is_directory(input, ec)) {
    for (const auto& e : fs::recursive_directory_iterator(input, ec))
      if (e.is_regular_file()) files_.push_back(e.path().string());
    std::sort(files_.begin(), files_.end());
  } else if (per_file) {
    std::ifstream list(input);
    if (!list) unreadable(input, "cannot open the list of files");
    const fs::path base = fs::path(input).parent_path();
    for (std::string line; std::getline(list, line);) {
      if (line.empty()) continue;
      const fs::path p(line);
      files_.push_back(p.is_absolute() ? line : (base / p).string());
    }
  } else {
    if (fs::is_directory(input, ec))
      user_error(
          "data error D14: --input {} is a folder.\n  fix: pass a .jsonl/.txt file (or .gz), or add "
          "--document per-file to read every file in the folder as one document",
          input);
    files_.push_back(input);
  }
  if (files_.empty())
    user_error("data error D14: {} lists no files.\n  fix: pass a folder with files or a list of file paths", input);
  for (const std::string& f : files_) {
    if (!fs::is_regular_file(f, ec)) unreadable(f, "not a regular file");
    total_bytes_ += fs::file_size(f, ec);
  }
}

InputReader::~InputReader() = default;

uint64_t InputReader::consumed_bytes() const {
  uint64_t at = done_bytes_;
  if (gz_ && gz_->f != nullptr) {
    const z_off_t o = gzoffset(gz_->f);
    if (o > 0) at += static_cast<uint64_t>(o);
  }
  return std::min(at, total_bytes_);
}

bool InputReader::open_next_file() {
  if (gz_) {
    std::error_code ec;
    done_bytes_ += fs::file_size(current_, ec);
  }
  gz_.reset();
  if (next_file_ >= files_.size()) return false;
  current_ = files_[next_file_++];
  gz_ = std::make_unique<Gz>();
  gz_->f = gzopen(current_.c_str(), "rb");
  if (gz_->f == nullptr) unreadable(current_, std::strerror(errno));
  gzbuffer(gz_->f, 1 << 20);
  line_ = 0;
  pending_.clear();
  pending_pos_ = 0;
  eof_ = false;
  return true;
}

// Appends more of the current file to pending_; false at its end. Checks zlib's error state.
static bool fill(gzFile f, std::string& pending, size_t& pos, const std::string& path, uint64_t& text_bytes) {
  if (pos > 0) {
    pending.erase(0, pos);
    pos = 0;
  }
  const size_t old = pending.size();
  pending.resize(old + (1 << 20));
  const int n = gzread(f, pending.data() + old, 1 << 20);
  int err = Z_OK;
  const char* msg = gzerror(f, &err);
  if (n < 0 || (err != Z_OK && err != Z_STREAM_END)) unreadable(path, msg != nullptr ? msg : "read error");
  pending.resize(old + static_cast<size_t>(n));
  text_bytes += static_cast<uint64_t>(n);
  return n > 0;
}

bool InputReader::read_line(std::string& line) {
  while (true) {
    const size_t nl = pending_.find('\n', pending_pos_);
    if (nl != std::string::npos) {
      line.assign(pending_, pending_pos_, nl - pending_pos_);
      pending_pos_ = nl + 1;
      ++line_;
      return true;
    }
    if (!eof_ && fill(gz_->f, pending_, pending_pos_, current_, text_bytes_)) continue;
    eof_ = true;
    if (pending_pos_ < pending_.size()) {  // a last line without '\n'
      line.assign(pending_, pending_pos_, std::string::npos);
      pending_pos_ = pending_.size();
      ++line_;
      return true;
    }
    return false;
  }
}

bool InputReader::next(InputChunk& chunk, size_t target_bytes) {
  chunk.buffer.clear();
  chunk.items.clear();
  chunk.lines.clear();
  chunk.files.clear();
  if (!gz_ && !open_next_file()) return false;
  if (per_file_) {
    while (chunk.buffer.size() < target_bytes) {
      const size_t start = chunk.buffer.size();
      while (fill(gz_->f, pending_, pending_pos_, current_, text_bytes_)) {
      }
      chunk.buffer += pending_;
      chunk.items.emplace_back(start, pending_.size());
      chunk.lines.push_back(0);
      chunk.files.push_back(current_);
      if (!open_next_file()) break;
    }
    return !chunk.items.empty();
  }
  chunk.files.push_back(current_);  // a line chunk never spans two files
  std::string line;
  while (chunk.buffer.size() < target_bytes) {
    if (!read_line(line)) {
      if (!chunk.items.empty()) break;
      if (!open_next_file()) return false;
      chunk.files[0] = current_;
      continue;
    }
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (skip_blank_ && line.find_first_not_of(" \t") == std::string::npos) continue;
    chunk.items.emplace_back(chunk.buffer.size(), line.size());
    chunk.lines.push_back(line_);
    chunk.buffer += line;
  }
  return !chunk.items.empty() || next(chunk, target_bytes);
}

}  // namespace foldmoe::data
