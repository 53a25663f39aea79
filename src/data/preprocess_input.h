// The input side of `foldmoe preprocess`: reads documents in chunks, in input order, from
//   - a JSON-lines or plain-text file, gzip-compressed or not (zlib reads both), one document a
//     line (blank lines of a text file are not documents), or
//   - a folder (every regular file below it, in sorted path order) or a list file (one path a
//     line), one document a file.
// A chunk holds the raw items; parsing and tokenising happen on worker threads.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data {

struct InputChunk {
  std::string buffer;                            // the items' bytes
  std::vector<std::pair<size_t, size_t>> items;  // (offset, size) in buffer
  std::vector<int64_t> lines;                    // 1-based line of each item (0 for a whole file)
  std::vector<std::string> files;                // file of each item (one entry when all share it)
  const std::string& file_of(size_t i) const { return files.size() == 1 ? files[0] : files[i]; }
  std::string_view item(size_t i) const { return std::string_view(buffer).substr(items[i].first, items[i].second); }
};

class InputReader {
 public:
  // `per_file`: one document a file (input is a folder or a list of paths); else one a line.
  // UserError (D14) when the input cannot be opened or lists nothing.
  InputReader(const std::string& input, bool per_file, bool skip_blank_lines);
  ~InputReader();
  // The next chunk of about `target_bytes`; false at the end. UserError (D14) on a read or gzip error.
  bool next(InputChunk& chunk, size_t target_bytes);
  // Bytes of the input files (compressed sizes) and how many have been consumed: for progress.
  uint64_t total_bytes() const { return total_bytes_; }
  uint64_t consumed_bytes() const;
  // Uncompressed bytes read so far (for MB/s).
  uint64_t text_bytes() const { return text_bytes_; }

 private:
  struct Gz;
  bool open_next_file();
  bool read_line(std::string& line);

  bool per_file_, skip_blank_;
  std::vector<std::string> files_;
  size_t next_file_ = 0;
  std::unique_ptr<Gz> gz_;
  std::string current_;
  int64_t line_ = 0;
  uint64_t total_bytes_ = 0, done_bytes_ = 0, text_bytes_ = 0;
  std::string pending_;  // bytes read past the last full line
  size_t pending_pos_ = 0;
  bool eof_ = false;
};

}  // namespace foldmoe::data
