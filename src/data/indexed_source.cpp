#include "data/indexed_source.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "config/problems.h"
#include "core/check.h"
#include "data/gpt_dataset.h"

namespace foldmoe::data {

void fill_indexed_loss_mask(std::span<const int32_t> tokens, int64_t rows, int64_t seq_len, bool eod_mask_loss,
                            int32_t eod_id, std::span<uint8_t> mask) {
  FOLDMOE_CHECK(int64_t(tokens.size()) == rows * (seq_len + 1) && int64_t(mask.size()) == rows * seq_len,
                "loss mask of {} rows of {} tokens: {} tokens, {} mask entries", rows, seq_len, tokens.size(),
                mask.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t s = 0; s < seq_len; ++s)
      mask[size_t(r * seq_len + s)] = eod_mask_loss && tokens[size_t(r * (seq_len + 1) + s)] == eod_id ? 0 : 1;
}

namespace {

GptDatasetSpec spec_of(const Config& cfg) {
  GptDatasetSpec s;
  s.paths = cfg.data.paths;
  s.weights = cfg.data.weights;
  s.split = cfg.data.split;
  s.seq_len = cfg.train.seq_len;
  s.seed = uint64_t(cfg.train.seed);
  s.cache_dir = cfg.data.cache_dir;
  return s;
}

// D1 / D23: every file the data names exists, all listed at once, before anything is read.
void check_data_files(const DataConfig& d) {
  namespace fs = std::filesystem;
  Problems p;
  for (const std::string& prefix : d.paths)
    for (const char* ext : {".bin", ".idx"}) {
      std::error_code ec;
      if (fs::is_regular_file(prefix + ext, ec)) continue;
      const bool has_suffix = prefix.ends_with(".bin") || prefix.ends_with(".idx");
      p.add("D1", fmt::format("[data] paths entry \"{}\": {}{} does not exist.", prefix, prefix, ext),
            has_suffix ? "write the prefix without .bin/.idx (paths = [\"data/corpus\"] for data/corpus.bin + .idx)."
                       : "check the path (relative paths start at the working directory), or write the dataset "
                         "with `foldmoe preprocess`.");
    }
  if (d.tokenizer != "char") {
    std::error_code ec;
    if (!fs::exists(d.tokenizer, ec))
      p.add("D23", fmt::format("[data] tokenizer \"{}\" does not exist.", d.tokenizer),
            "give the tokenizer the data was made with: a tokenizer.json (or its directory), a SentencePiece "
            ".model, or \"char\".");
  }
  p.raise("data errors");
}

}  // namespace

IndexedSource::IndexedSource(const Config& cfg, bool with_validation)
    : paths_(cfg.data.paths),
      weights_(cfg.data.weights),
      split_(cfg.data.split),
      seed_(uint64_t(cfg.train.seed)),
      seq_len_(cfg.train.seq_len),
      eod_mask_loss_(cfg.data.eod_mask_loss) {
  check_data_files(cfg.data);
  tokenizer_ = load_tokenizer(cfg.data.tokenizer);
  if (eod_mask_loss_) {
    const std::optional<int32_t> eos = tokenizer_->eos_id();
    if (!eos)
      user_error(
          "config error D22: [data] eod_mask_loss = true, but the tokenizer {} has no end-of-document token\n"
          "  fix: set eod_mask_loss = false, or use a tokenizer with an EOS token",
          tokenizer_->describe());
    eod_id_ = *eos;
  }
  const GptDatasetSpec spec = spec_of(cfg);
  train_ = std::make_unique<GptDataset>(spec, Split::Train);
  if (with_validation) valid_ = std::make_unique<GptDataset>(spec, Split::Valid);
}

IndexedSource::~IndexedSource() = default;

Batch IndexedSource::batch_of(const GptDataset& ds, int64_t first_sample, int gbs, int seq_len) const {
  FOLDMOE_CHECK(seq_len == seq_len_, "indexed data was opened for sequences of {} tokens, asked for {}", seq_len_,
                seq_len);
  const int64_t S = seq_len;
  Batch b{Tensor::empty({gbs, S + 1}, DType::I32), Tensor::empty({gbs, S}, DType::U8),
          Tensor::empty({gbs, S}, DType::U8)};
  int32_t* tok = b.tokens.data<int32_t>();
  for (int64_t r = 0; r < gbs; ++r) ds.sample(first_sample + r, std::span<int32_t>(tok + r * (S + 1), size_t(S + 1)));
  fill_indexed_loss_mask(std::span<const int32_t>(tok, size_t(gbs * (S + 1))), gbs, S, eod_mask_loss_, eod_id_,
                         std::span<uint8_t>(b.loss_mask.data<uint8_t>(), size_t(gbs * S)));
  uint8_t* tasks = b.task_ids.data<uint8_t>();
  std::fill(tasks, tasks + gbs * S, kNoTask);
  return b;
}

Batch IndexedSource::global_batch(int64_t step, int gbs, int seq_len) const {
  return batch_of(*train_, step * gbs, gbs, seq_len);
}

Batch IndexedSource::validation_batch(int64_t index, int gbs, int seq_len) const {
  FOLDMOE_CHECK(valid_, "validation batch asked of indexed data opened without its valid split");
  return batch_of(*valid_, index * gbs, gbs, seq_len);
}

int32_t IndexedSource::max_token_id() const {
  return valid_ ? std::max(train_->max_token_id(), valid_->max_token_id()) : train_->max_token_id();
}

std::string IndexedSource::fingerprint() const {
  // Readable parts first (a refused resume shows what changed), then the datasets' own fingerprint.
  return fmt::format("indexed paths=[{}] weights=[{}] split={} seed={} data={}", fmt::join(paths_, ", "),
                     fmt::join(weights_, ", "), split_, seed_, train_->fingerprint());
}

std::string IndexedSource::describe() const {
  return fmt::format("indexed {}, tokenizer {}{}", train_->describe(), tokenizer_->describe(),
                     eod_mask_loss_ ? ", no loss after end-of-document" : "");
}

}  // namespace foldmoe::data
