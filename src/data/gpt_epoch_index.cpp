#include "data/gpt_epoch_index.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "core/check.h"
#include "data/gpt_shuffle.h"
#include "data/mapped_file.h"

namespace foldmoe::data {
namespace {
constexpr char kMagic[8] = {'F', 'M', 'G', 'P', 'T', 'I', 'X', '1'};
constexpr size_t kHeader = 32;  // magic, u64 documents, u64 samples, u64 reserved
}  // namespace

int64_t gpt_samples_per_epoch(int64_t tokens, int seq_len) {
  FOLDMOE_CHECK(seq_len >= 1, "seq_len {}", seq_len);
  return tokens <= 1 ? 0 : (tokens - 1) / seq_len;
}

std::shared_ptr<const GptEpochIndex> GptEpochIndex::build(const IndexedDataset& data, SequenceRange range, int seq_len,
                                                          uint64_t doc_key, uint64_t sample_key) {
  auto e = std::make_shared<GptEpochIndex>();
  const int64_t D = range.size();
  int64_t tokens = 0;
  for (int64_t s = range.begin; s < range.end; ++s) tokens += data.sequence_length(s);
  const int64_t N = gpt_samples_per_epoch(tokens, seq_len);
  e->num_documents_ = D;
  e->num_samples_ = N;
  e->owned_.resize(static_cast<size_t>(D + 3 * N));
  int64_t* docs = e->owned_.data();
  const std::vector<int64_t> order = keyed_permutation(D, doc_key);
  for (int64_t d = 0; d < D; ++d) docs[d] = range.begin + order[d];
  // Walk the documents once: sample p starts at token p * seq_len of the epoch.
  int64_t* sdoc = docs + D;
  int64_t* soff = sdoc + N;
  int64_t d = 0, doc_start = 0;  // position in docs, epoch token where docs[d] starts
  for (int64_t p = 0; p < N; ++p) {
    const int64_t t = p * seq_len;
    while (doc_start + data.sequence_length(docs[d]) <= t) doc_start += data.sequence_length(docs[d++]);
    sdoc[p] = d;
    soff[p] = t - doc_start;
  }
  const std::vector<int64_t> shuffle = keyed_permutation(N, sample_key);
  std::copy(shuffle.begin(), shuffle.end(), soff + N);
  e->base_ = e->owned_.data();
  return e;
}

std::shared_ptr<const GptEpochIndex> GptEpochIndex::load(const std::string& path, int64_t num_documents,
                                                         int64_t num_samples) {
  std::string why;
  auto m = MappedFile::open(path, &why);
  if (!m) return nullptr;
  const size_t want = kHeader + 8 * static_cast<size_t>(num_documents + 3 * num_samples);
  if (m->size() != want || std::memcmp(m->data(), kMagic, 8) != 0) return nullptr;
  int64_t d = 0, n = 0;
  std::memcpy(&d, m->data() + 8, 8);
  std::memcpy(&n, m->data() + 16, 8);
  if (d != num_documents || n != num_samples) return nullptr;
  auto e = std::make_shared<GptEpochIndex>();
  e->num_documents_ = d;
  e->num_samples_ = n;
  // The mapping is page-aligned and the header is 32 bytes, so the int64 arrays are aligned.
  e->base_ = reinterpret_cast<const int64_t*>(m->data() + kHeader);
  e->mapped_ = std::move(m);
  return e;
}

bool GptEpochIndex::consistent_with(const IndexedDataset& data, SequenceRange range, int seq_len) const {
  if (num_documents_ != range.size()) return false;
  std::vector<bool> seen(static_cast<size_t>(num_documents_));
  std::vector<int64_t> start(static_cast<size_t>(num_documents_) + 1);  // epoch token where position d starts
  for (int64_t d = 0; d < num_documents_; ++d) {
    const int64_t s = documents()[d] - range.begin;
    if (s < 0 || s >= num_documents_ || seen[s]) return false;
    seen[s] = true;
    start[d + 1] = start[d] + data.sequence_length(documents()[d]);
  }
  if (num_samples_ != gpt_samples_per_epoch(start.back(), seq_len)) return false;
  std::vector<bool> used(static_cast<size_t>(num_samples_));
  for (int64_t p = 0; p < num_samples_; ++p) {
    const int64_t d = sample_doc()[p], off = sample_offset()[p], k = shuffle()[p];
    if (d < 0 || d >= num_documents_ || off < 0 || off >= start[d + 1] - start[d] || start[d] + off != p * seq_len)
      return false;
    if (k < 0 || k >= num_samples_ || used[k]) return false;
    used[k] = true;
  }
  return true;
}

bool GptEpochIndex::save(const std::string& path, std::string* error) const {
  static std::atomic<int> counter{0};
  const std::string tmp = fmt::format("{}.tmp-{}-{}", path, ::getpid(), counter++);
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (f == nullptr) {
    *error = std::strerror(errno);
    return false;
  }
  uint8_t header[kHeader] = {};
  std::memcpy(header, kMagic, 8);
  std::memcpy(header + 8, &num_documents_, 8);
  std::memcpy(header + 16, &num_samples_, 8);
  const size_t n = static_cast<size_t>(num_documents_ + 3 * num_samples_);
  bool ok = std::fwrite(header, 1, kHeader, f) == kHeader && std::fwrite(base_, 8, n, f) == n;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    *error = std::strerror(errno);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

}  // namespace foldmoe::data
