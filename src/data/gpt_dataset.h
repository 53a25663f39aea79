// GPT pre-training samples from one or a blend of several Megatron indexed datasets (docs/data.md).
//
// Per dataset and split: the split's sequences (Megatron's split string over sequences; one
// sequence per document in files from `foldmoe preprocess`) are laid end to end in an order
// shuffled per epoch; sample p of the epoch is tokens [p*L, p*L + L + 1) (L = seq_len), so
// consecutive samples overlap by one token and cross document boundaries; the samples of an epoch
// are served in a shuffled order; epoch e + 1 follows epoch e with fresh shuffles. Blends assign
// samples to datasets as Megatron's BlendedDataset does.
//
// Unlike Megatron, which sizes one index for train_iters x global_batch samples (shuffling documents
// across all epochs together), every epoch here is shuffled on its own: sample i is a pure function
// of (data, spec, split, i), whatever the number of samples a run will draw.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace foldmoe::data {

enum class Split : uint8_t { Train = 0, Valid = 1, Test = 2 };
const char* split_name(Split s);  // "train", "valid", "test"

struct GptDatasetSpec {
  std::vector<std::string> paths;  // dataset prefixes
  std::vector<double> weights;     // empty = one dataset or weights by samples per epoch; else one per path
  std::string split = "969,30,1";  // train/valid/test weights over sequences (Megatron's semantics)
  int seq_len = 0;                 // a sample holds seq_len + 1 tokens
  uint64_t seed = 1234;
  std::string cache_dir;  // "" = beside each dataset; an unwritable folder falls back to memory
};

class GptDataset {
 public:
  // UserError on bad files (D1-D5, D10), a bad split string (D7), an empty split (D8) or bad
  // weights (D9), before any index is built.
  GptDataset(const GptDatasetSpec& spec, Split split);
  ~GptDataset();
  GptDataset(GptDataset&&) noexcept;

  // Sample `index` (any index >= 0): seq_len + 1 tokens into out. Thread-safe.
  void sample(int64_t index, std::span<int32_t> out) const;
  // Samples in one epoch of this split (blend: the sum over its datasets).
  int64_t samples_per_epoch() const;
  int32_t max_token_id() const;
  std::string fingerprint() const;
  std::string describe() const;

  // For tests and diagnostics: (dataset, that dataset's sample) of sample `index`, and the
  // normalised blend weights.
  std::pair<int, int64_t> locate(int64_t index) const;
  std::vector<double> weights() const;
  // Index-cache files this dataset has written or mapped so far (tests: reuse/rebuild).
  std::vector<std::string> cache_files() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace foldmoe::data
