// Megatron-LM's indexed dataset (the "MMIDIDX" format written by tools/preprocess_data.py), read
// and written byte for byte compatibly. A dataset is a pair of files:
//
//   PREFIX.bin  the tokens of every sequence, back to back, in one integer dtype (no header)
//   PREFIX.idx  little-endian:
//                 9 bytes   magic "MMIDIDX\0\0"
//                 u64       version (1)
//                 u8        dtype code (TokenDType)
//                 u64       S = number of sequences
//                 u64       D = number of document-index entries (documents + 1)
//                 i32[S]    sequence lengths, in tokens
//                 i64[S]    sequence pointers: byte offset of each sequence in PREFIX.bin
//                 i64[D]    document indices: document d is sequences [idx[d], idx[d+1]);
//                           idx[0] = 0 and idx[D-1] = S
//
// open() validates everything (docs/data.md, rules D1-D5, D10) so that no later read can leave the
// mapped files; the .bin is memory-mapped, never read into memory.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace foldmoe::data {

class MappedFile;

// Megatron's dtype codes (DType.code_from_dtype).
enum class TokenDType : uint8_t {
  UInt8 = 1,
  Int8 = 2,
  Int16 = 3,
  Int32 = 4,
  Int64 = 5,
  Float64 = 6,
  Float32 = 7,
  UInt16 = 8,
};

// Bytes per token; 0 for a code that is not one of the above.
int token_dtype_size(TokenDType t);
// "uint16", "int32", ...; "unknown" for a bad code.
const char* token_dtype_name(TokenDType t);
// Megatron's rule (DType.optimal_dtype): uint16 when vocab_size < 65500, else int32.
TokenDType smallest_token_dtype(int32_t vocab_size);

class IndexedDataset {
 public:
  // Opens PREFIX.idx and PREFIX.bin. UserError naming the file, what is wrong and the fix.
  static IndexedDataset open(const std::string& prefix);

  int64_t num_sequences() const { return num_sequences_; }
  int64_t num_documents() const { return static_cast<int64_t>(document_indices_.size()) - 1; }
  std::span<const int64_t> document_indices() const { return document_indices_; }
  int32_t sequence_length(int64_t i) const;
  // Byte offset of sequence i in PREFIX.bin.
  int64_t sequence_pointer(int64_t i) const;
  int64_t num_tokens() const { return num_tokens_; }
  // Tokens [offset, offset + count) of sequence `seq`, widened to int32.
  void read(int64_t seq, int64_t offset, int64_t count, int32_t* out) const;
  // Largest token id in the .bin (scanned once, on first call). UserError (D10) when a token is
  // negative or does not fit an int32.
  int32_t max_token_id() const;
  TokenDType dtype() const { return dtype_; }
  const std::string& prefix() const { return prefix_; }
  // 16 hex digits: CRC-32 of the whole .idx and of the .bin's size. Stable across copies and
  // hosts; changes when the data is rewritten.
  std::string fingerprint() const;

 private:
  struct Lazy;
  std::string prefix_;
  TokenDType dtype_ = TokenDType::UInt16;
  int64_t num_sequences_ = 0;
  int64_t num_tokens_ = 0;
  std::shared_ptr<const MappedFile> idx_, bin_;
  const uint8_t* lengths_ = nullptr;   // i32[S] inside idx_ (possibly unaligned)
  const uint8_t* pointers_ = nullptr;  // i64[S] inside idx_ (possibly unaligned)
  std::vector<int64_t> document_indices_;
  std::shared_ptr<Lazy> lazy_;
};

// Writes PREFIX.bin and PREFIX.idx as Megatron's IndexedDatasetBuilder does (one sequence per
// document). Both go to temporary names first and are renamed by finalize(), .bin then .idx, so a
// reader never sees a half-written pair; a writer destroyed without finalize() removes its
// temporaries.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::string prefix, TokenDType dtype);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Appends one document made of one sequence. UserError when a token does not fit the dtype.
  void add_document(std::span<const int32_t> tokens);
  void finalize();

  int64_t num_documents() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t num_tokens() const { return tokens_; }
  int64_t bin_bytes() const { return tokens_ * token_dtype_size(dtype_); }

 private:
  std::string prefix_, bin_tmp_, idx_tmp_;
  TokenDType dtype_;
  std::FILE* bin_ = nullptr;
  std::vector<int32_t> lengths_;
  std::vector<uint8_t> scratch_;
  int64_t tokens_ = 0;
  bool finalized_ = false;
};

}  // namespace foldmoe::data
