// The indices of one epoch of one split of one indexed dataset (docs/data.md "GPT samples"):
//
//   documents[d]   sequence id at position d of this epoch's shuffled document order
//   sample_doc[p], sample_offset[p]
//                  where sample p starts: position in `documents` and token offset in that
//                  document. Sample p is tokens [p*L, p*L + L + 1) of the epoch's documents laid
//                  end to end (L = seq_len), so consecutive samples share one token; the epoch holds
//                  N = (T - 1) / L samples for T tokens, and the tail that does not fill one is
//                  dropped (it is not carried into the next epoch).
//   shuffle[k]     the sample p served at step k of the epoch
//
// Built once and cached as a file (a hash of the data fingerprint and settings in its name),
// memory-mapped on reuse; see GptEpochCache.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "data/gpt_split.h"
#include "data/indexed_dataset.h"

namespace foldmoe::data {

class MappedFile;

class GptEpochIndex {
 public:
  int64_t num_documents() const { return num_documents_; }
  int64_t num_samples() const { return num_samples_; }
  const int64_t* documents() const { return base_; }
  const int64_t* sample_doc() const { return base_ + num_documents_; }
  const int64_t* sample_offset() const { return base_ + num_documents_ + num_samples_; }
  const int64_t* shuffle() const { return base_ + num_documents_ + 2 * num_samples_; }

  // Builds in memory.
  static std::shared_ptr<const GptEpochIndex> build(const IndexedDataset& data, SequenceRange range, int seq_len,
                                                    uint64_t doc_key, uint64_t sample_key);
  // Maps a cache file; nullptr if it is missing or does not hold an index of this shape.
  static std::shared_ptr<const GptEpochIndex> load(const std::string& path, int64_t num_documents, int64_t num_samples);
  // Whether this index is consistent with the data: the documents a permutation of `range`, every
  // sample starting at token p * seq_len of the epoch, the shuffle a permutation. A cache file that
  // fails this (damaged on disk) is rebuilt rather than trusted: no read can then leave the data.
  bool consistent_with(const IndexedDataset& data, SequenceRange range, int seq_len) const;
  // Writes to `path` through a temporary name and rename (concurrent writers of the same content
  // are safe). False with `error` set when it cannot.
  bool save(const std::string& path, std::string* error) const;

 private:
  int64_t num_documents_ = 0, num_samples_ = 0;
  std::vector<int64_t> owned_;
  std::shared_ptr<const MappedFile> mapped_;
  const int64_t* base_ = nullptr;
};

// Samples per epoch of a split holding `tokens` tokens: (tokens - 1) / seq_len, 0 when too small.
int64_t gpt_samples_per_epoch(int64_t tokens, int seq_len);

}  // namespace foldmoe::data
