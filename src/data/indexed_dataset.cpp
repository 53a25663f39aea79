#include "data/indexed_dataset.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <mutex>

#include "core/check.h"
#include "core/crc32.h"
#include "data/mapped_file.h"

namespace foldmoe::data {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', 0, 0};
constexpr uint64_t kVersion = 1;
constexpr size_t kHeaderBytes = 9 + 8 + 1 + 8 + 8;
const char* const kRemake = "re-create it with `foldmoe preprocess` (or Megatron's tools/preprocess_data.py)";

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
int64_t widen(const uint8_t* p) {
  return static_cast<int64_t>(load<T>(p));
}

// Token i of a dtype-typed byte array, as int64 (float dtypes are refused at open).
int64_t token_at(TokenDType t, const uint8_t* base, int64_t i) {
  switch (t) {
    case TokenDType::UInt8:
      return widen<uint8_t>(base + i);
    case TokenDType::Int8:
      return widen<int8_t>(base + i);
    case TokenDType::Int16:
      return widen<int16_t>(base + 2 * i);
    case TokenDType::UInt16:
      return widen<uint16_t>(base + 2 * i);
    case TokenDType::Int32:
      return widen<int32_t>(base + 4 * i);
    case TokenDType::Int64:
      return widen<int64_t>(base + 8 * i);
    default:
      FOLDMOE_CHECK(false, "token_at on a non-integer dtype");
  }
  return 0;
}

}  // namespace

int token_dtype_size(TokenDType t) {
  switch (t) {
    case TokenDType::UInt8:
    case TokenDType::Int8:
      return 1;
    case TokenDType::Int16:
    case TokenDType::UInt16:
      return 2;
    case TokenDType::Int32:
    case TokenDType::Float32:
      return 4;
    case TokenDType::Int64:
    case TokenDType::Float64:
      return 8;
  }
  return 0;
}

const char* token_dtype_name(TokenDType t) {
  switch (t) {
    case TokenDType::UInt8:
      return "uint8";
    case TokenDType::Int8:
      return "int8";
    case TokenDType::Int16:
      return "int16";
    case TokenDType::Int32:
      return "int32";
    case TokenDType::Int64:
      return "int64";
    case TokenDType::Float64:
      return "float64";
    case TokenDType::Float32:
      return "float32";
    case TokenDType::UInt16:
      return "uint16";
  }
  return "unknown";
}

TokenDType smallest_token_dtype(int32_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::UInt16 : TokenDType::Int32;
}

struct IndexedDataset::Lazy {
  std::once_flag once;
  int64_t max_token = -1, min_token = 0;
};

IndexedDataset IndexedDataset::open(const std::string& prefix) {
  IndexedDataset d;
  d.prefix_ = prefix;
  d.lazy_ = std::make_shared<Lazy>();
  const std::string idx_path = prefix + ".idx", bin_path = prefix + ".bin";
  std::string why;
  d.idx_ = MappedFile::open(idx_path, &why);
  if (!d.idx_)
    user_error(
        "data error D1: cannot open {}: {}.\n  fix: pass the dataset prefix (the path without .idx/.bin) of an "
        "existing dataset, or create it with `foldmoe preprocess --output-prefix {}`",
        idx_path, why, prefix);
  d.bin_ = MappedFile::open(bin_path, &why);
  if (!d.bin_)
    user_error("data error D1: cannot open {}: {} (its index {} exists).\n  fix: copy the .bin beside the .idx, or {}",
               bin_path, why, idx_path, kRemake);

  const uint8_t* p = d.idx_->data();
  const size_t n = d.idx_->size();
  if (n < kHeaderBytes || std::memcmp(p, kMagic, 9) != 0)
    user_error(
        "data error D2: {} is not a Megatron indexed-dataset index ({}).\n  fix: pass the prefix of a "
        "dataset made by `foldmoe preprocess` or Megatron's preprocess_data.py, or {}",
        idx_path, n < kHeaderBytes ? fmt::format("only {} bytes, shorter than the header", n) : "wrong magic bytes",
        kRemake);
  const uint64_t version = load<uint64_t>(p + 9);
  if (version != kVersion)
    user_error("data error D2: {} has index version {}; only version 1 (Megatron's MMIDIDX) is read.\n  fix: {}",
               idx_path, version, kRemake);
  const uint8_t code = p[17];
  d.dtype_ = static_cast<TokenDType>(code);
  if (token_dtype_size(d.dtype_) == 0)
    user_error("data error D2: {} has dtype code {}, not one of Megatron's codes 1-8.\n  fix: {}", idx_path, code,
               kRemake);
  if (d.dtype_ == TokenDType::Float32 || d.dtype_ == TokenDType::Float64)
    user_error("data error D10: {} holds {} values, not token ids.\n  fix: {} with an integer dtype", idx_path,
               token_dtype_name(d.dtype_), kRemake);
  const uint64_t seqs = load<uint64_t>(p + 18), docs = load<uint64_t>(p + 26);
  // Sizes the header promises; each bounded before multiplying so nothing overflows.
  const uint64_t room = n - kHeaderBytes;
  if (seqs > room / 12 || docs > room / 8 || seqs * 12 + docs * 8 > room || docs == 0)
    user_error(
        "data error D3: {} is truncated or its counts are wrong: the header says {} sequences and {} "
        "document-index entries ({} bytes), but the file has {} bytes after the header.\n  fix: {}",
        idx_path, seqs, docs, docs == 0 ? 0 : seqs * 12 + docs * 8, room,
        docs == 0 ? kRemake : std::string(kRemake) + " (the copy may be incomplete)");
  const uint64_t extra = room - (seqs * 12 + docs * 8);
  // Megatron's multimodal datasets append one int8 mode per sequence; anything else is damage.
  if (extra != 0 && extra != seqs)
    user_error(
        "data error D3: {} has {} bytes more than its {} sequences and {} document-index entries need.\n  fix: "
        "{}",
        idx_path, extra, seqs, docs, kRemake);
  d.num_sequences_ = static_cast<int64_t>(seqs);
  d.lengths_ = p + kHeaderBytes;
  d.pointers_ = d.lengths_ + 4 * seqs;
  const uint8_t* docp = d.pointers_ + 8 * seqs;

  // Sequences are stored back to back from byte 0, as Megatron writes them.
  const int size = token_dtype_size(d.dtype_);
  const uint64_t bin_size = d.bin_->size();
  uint64_t expect = 0;
  for (uint64_t i = 0; i < seqs; ++i) {
    const int32_t len = load<int32_t>(d.lengths_ + 4 * i);
    const int64_t ptr = load<int64_t>(d.pointers_ + 8 * i);
    if (len < 0)
      user_error("data error D4: {}: sequence {} has a negative length ({}).\n  fix: {}", idx_path, i, len, kRemake);
    if (ptr < 0 || static_cast<uint64_t>(ptr) > bin_size ||
        static_cast<uint64_t>(len) * size > bin_size - static_cast<uint64_t>(ptr))
      user_error(
          "data error D4: {}: sequence {} ({} tokens at byte {}) lies past the end of {} ({} bytes).\n  fix: "
          "the .bin is truncated or belongs to another dataset; {}",
          idx_path, i, len, ptr, bin_path, bin_size, kRemake);
    if (static_cast<uint64_t>(ptr) != expect)
      user_error(
          "data error D4: {}: sequence {} starts at byte {} but the sequences before it end at byte {} "
          "(sequence pointers and lengths disagree).\n  fix: {}",
          idx_path, i, ptr, expect, kRemake);
    expect += static_cast<uint64_t>(len) * size;
  }
  if (expect != bin_size)
    user_error(
        "data error D4: {} has {} bytes but {} lists {} tokens of {} ({} bytes).\n  fix: the .bin and .idx do "
        "not belong together (or one is truncated); {}",
        bin_path, bin_size, idx_path, expect / size, token_dtype_name(d.dtype_), expect, kRemake);
  d.num_tokens_ = static_cast<int64_t>(expect / size);

  d.document_indices_.resize(docs);
  for (uint64_t i = 0; i < docs; ++i) {
    const int64_t v = load<int64_t>(docp + 8 * i);
    const int64_t prev = i == 0 ? 0 : d.document_indices_[i - 1];
    if ((i == 0 && v != 0) || v < prev || v > d.num_sequences_)
      user_error("data error D5: {}: document index entry {} is {} ({}).\n  fix: {}", idx_path, i, v,
                 i == 0 ? "the first entry must be 0"
                        : fmt::format("entries must rise from 0 to the sequence count {}, and the one before is {}",
                                      d.num_sequences_, prev),
                 kRemake);
    d.document_indices_[i] = v;
  }
  if (d.document_indices_.back() != d.num_sequences_)
    user_error("data error D5: {}: the last document index entry is {}, not the sequence count {}.\n  fix: {}",
               idx_path, d.document_indices_.back(), d.num_sequences_, kRemake);
  return d;
}

int32_t IndexedDataset::sequence_length(int64_t i) const {
  FOLDMOE_CHECK(i >= 0 && i < num_sequences_, "sequence {} of {}", i, num_sequences_);
  return load<int32_t>(lengths_ + 4 * i);
}

int64_t IndexedDataset::sequence_pointer(int64_t i) const {
  FOLDMOE_CHECK(i >= 0 && i < num_sequences_, "sequence {} of {}", i, num_sequences_);
  return load<int64_t>(pointers_ + 8 * i);
}

void IndexedDataset::read(int64_t seq, int64_t offset, int64_t count, int32_t* out) const {
  FOLDMOE_CHECK(offset >= 0 && count >= 0 && offset + count <= sequence_length(seq), "read {}+{} of sequence {}",
                offset, count, seq);
  if (count == 0) return;
  const int size = token_dtype_size(dtype_);
  const uint8_t* base = bin_->data() + sequence_pointer(seq) + offset * size;
  switch (dtype_) {
    case TokenDType::UInt16:
      for (int64_t i = 0; i < count; ++i) out[i] = load<uint16_t>(base + 2 * i);
      return;
    case TokenDType::Int32:
      std::memcpy(out, base, static_cast<size_t>(count) * 4);
      return;
    default:
      for (int64_t i = 0; i < count; ++i) out[i] = static_cast<int32_t>(token_at(dtype_, base, i));
  }
}

int32_t IndexedDataset::max_token_id() const {
  std::call_once(lazy_->once, [this] {
    int64_t hi = -1, lo = 0;
    const uint8_t* base = bin_->data();
    for (int64_t i = 0; i < num_tokens_; ++i) {
      const int64_t v = token_at(dtype_, base, i);
      hi = std::max(hi, v);
      lo = std::min(lo, v);
    }
    lazy_->max_token = hi;
    lazy_->min_token = lo;
  });
  if (lazy_->min_token < 0 || lazy_->max_token > std::numeric_limits<int32_t>::max())
    user_error(
        "data error D10: {}.bin holds token id {}, outside 0 .. 2^31-1.\n  fix: the data was not written "
        "with a tokenizer's ids; {}",
        prefix_, lazy_->min_token < 0 ? lazy_->min_token : lazy_->max_token, kRemake);
  return static_cast<int32_t>(lazy_->max_token);
}

std::string IndexedDataset::fingerprint() const {
  const uint32_t a = crc32(idx_->data(), idx_->size());
  const uint64_t bin_size = bin_->size();
  const uint32_t b = crc32(&bin_size, sizeof(bin_size));
  return fmt::format("{:08x}{:08x}", a, b);
}

// ---------------------------------------------------------------------------------------------

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, TokenDType dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  FOLDMOE_CHECK(token_dtype_size(dtype) > 0 && dtype != TokenDType::Float32 && dtype != TokenDType::Float64,
                "writer dtype {}", static_cast<int>(dtype));
  const std::string tag = fmt::format(".tmp-{}", ::getpid());
  bin_tmp_ = prefix_ + ".bin" + tag;
  idx_tmp_ = prefix_ + ".idx" + tag;
  bin_ = std::fopen(bin_tmp_.c_str(), "wb");
  if (bin_ == nullptr)
    user_error(
        "data error D12: cannot create {}: {}.\n  fix: choose an --output-prefix in an existing, writable folder",
        bin_tmp_, std::strerror(errno));
  std::setvbuf(bin_, nullptr, _IOFBF, 1 << 20);
}

IndexedDatasetWriter::~IndexedDatasetWriter() {
  if (!finalized_) {
    if (bin_ != nullptr) std::fclose(bin_);
    std::remove(bin_tmp_.c_str());
    std::remove(idx_tmp_.c_str());
  }
}

void IndexedDatasetWriter::add_document(std::span<const int32_t> tokens) {
  FOLDMOE_CHECK(!finalized_, "add_document after finalize");
  FOLDMOE_CHECK(tokens.size() <= static_cast<size_t>(std::numeric_limits<int32_t>::max()), "document too long");
  const int size = token_dtype_size(dtype_);
  scratch_.resize(tokens.size() * size);
  const int64_t hi = dtype_ == TokenDType::UInt8    ? 255
                     : dtype_ == TokenDType::Int8   ? 127
                     : dtype_ == TokenDType::Int16  ? 32767
                     : dtype_ == TokenDType::UInt16 ? 65535
                                                    : std::numeric_limits<int32_t>::max();
  const int64_t lo = (dtype_ == TokenDType::UInt8 || dtype_ == TokenDType::UInt16) ? 0 : -hi - 1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int64_t v = tokens[i];
    if (v < lo || v > hi)
      user_error(
          "data error D10: token id {} does not fit the {} dtype of {}.bin.\n  fix: write with a wider dtype "
          "(int32)",
          v, token_dtype_name(dtype_), prefix_);
    uint8_t* dst = scratch_.data() + i * size;
    switch (dtype_) {
      case TokenDType::UInt8:
        *dst = static_cast<uint8_t>(v);
        break;
      case TokenDType::Int8: {
        const int8_t x = static_cast<int8_t>(v);
        std::memcpy(dst, &x, 1);
        break;
      }
      case TokenDType::Int16: {
        const int16_t x = static_cast<int16_t>(v);
        std::memcpy(dst, &x, 2);
        break;
      }
      case TokenDType::UInt16: {
        const uint16_t x = static_cast<uint16_t>(v);
        std::memcpy(dst, &x, 2);
        break;
      }
      case TokenDType::Int32: {
        const int32_t x = static_cast<int32_t>(v);
        std::memcpy(dst, &x, 4);
        break;
      }
      default: {
        const int64_t x = v;
        std::memcpy(dst, &x, 8);
        break;
      }
    }
  }
  if (!scratch_.empty() && std::fwrite(scratch_.data(), 1, scratch_.size(), bin_) != scratch_.size())
    user_error("data error D12: cannot write {}: {}.\n  fix: free disk space or choose another --output-prefix",
               bin_tmp_, std::strerror(errno));
  lengths_.push_back(static_cast<int32_t>(tokens.size()));
  tokens_ += static_cast<int64_t>(tokens.size());
}

void IndexedDatasetWriter::finalize() {
  FOLDMOE_CHECK(!finalized_, "finalize twice");
  const bool bin_ok = std::fflush(bin_) == 0 && ::fsync(fileno(bin_)) == 0;
  std::fclose(bin_);
  bin_ = nullptr;
  if (!bin_ok)
    user_error("data error D12: cannot write {}: {}.\n  fix: free disk space or choose another --output-prefix",
               bin_tmp_, std::strerror(errno));
  std::FILE* f = std::fopen(idx_tmp_.c_str(), "wb");
  if (f == nullptr)
    user_error(
        "data error D12: cannot create {}: {}.\n  fix: choose an --output-prefix in an existing, writable folder",
        idx_tmp_, std::strerror(errno));
  std::vector<uint8_t> out(kHeaderBytes);
  std::memcpy(out.data(), kMagic, 9);
  const uint64_t seqs = lengths_.size(), docs = seqs + 1;
  std::memcpy(out.data() + 9, &kVersion, 8);
  out[17] = static_cast<uint8_t>(dtype_);
  std::memcpy(out.data() + 18, &seqs, 8);
  std::memcpy(out.data() + 26, &docs, 8);
  const auto append = [&out](const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  };
  append(lengths_.data(), lengths_.size() * 4);
  int64_t ptr = 0;
  for (int32_t len : lengths_) {
    append(&ptr, 8);
    ptr += static_cast<int64_t>(len) * token_dtype_size(dtype_);
  }
  for (uint64_t d = 0; d < docs; ++d) append(&d, 8);
  const bool ok =
      std::fwrite(out.data(), 1, out.size(), f) == out.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  std::fclose(f);
  if (!ok)
    user_error("data error D12: cannot write {}: {}.\n  fix: free disk space or choose another --output-prefix",
               idx_tmp_, std::strerror(errno));
  const std::string bin_path = prefix_ + ".bin", idx_path = prefix_ + ".idx";
  if (std::rename(bin_tmp_.c_str(), bin_path.c_str()) != 0 || std::rename(idx_tmp_.c_str(), idx_path.c_str()) != 0)
    user_error(
        "data error D12: cannot rename the finished dataset to {}.bin/.idx: {}.\n  fix: check the folder's "
        "permissions",
        prefix_, std::strerror(errno));
  finalized_ = true;
}

}  // namespace foldmoe::data
