#include "data/gpt_dataset.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>

#include "core/check.h"
#include "core/crc32.h"
#include "data/blend_index.h"
#include "data/gpt_epoch_index.h"
#include "data/gpt_shuffle.h"
#include "data/gpt_split.h"
#include "data/indexed_dataset.h"

namespace foldmoe::data {
namespace {

constexpr int kFormatVersion = 1;  // bump when the index layout or the shuffles change

std::string hash16(const std::string& s) {
  return fmt::format("{:08x}{:08x}", crc32(s.data(), s.size()), crc32(s.data(), s.size(), 0x5bd1e995u));
}

// One split of one indexed dataset, with its per-epoch indices.
class Source {
 public:
  Source(IndexedDataset data, SequenceRange range, Split split, const GptDatasetSpec& spec)
      : data_(std::move(data)), range_(range), split_(split), seq_len_(spec.seq_len), seed_(spec.seed) {
    for (int64_t s = range_.begin; s < range_.end; ++s) tokens_ += data_.sequence_length(s);
    samples_ = gpt_samples_per_epoch(tokens_, seq_len_);
    namespace fs = std::filesystem;
    const fs::path prefix(data_.prefix());
    const fs::path dir = !spec.cache_dir.empty()        ? fs::path(spec.cache_dir)
                         : prefix.parent_path().empty() ? fs::current_path()
                                                        : prefix.parent_path();
    key_ = hash16(fmt::format("v{}|{}|{}|{}|{}|{}|{}", kFormatVersion, data_.fingerprint(), range_.begin, range_.end,
                              seq_len_, seed_, static_cast<int>(split_)));
    cache_stem_ = (dir / fmt::format("{}.{}-gpt-{}", prefix.filename().string(), split_name(split_), key_)).string();
  }

  const IndexedDataset& data() const { return data_; }
  SequenceRange range() const { return range_; }
  int64_t tokens() const { return tokens_; }
  int64_t samples_per_epoch() const { return samples_; }
  const std::string& key() const { return key_; }

  void sample(int64_t j, std::span<int32_t> out) const {
    const int64_t epoch = j / samples_, k = j % samples_;
    const std::shared_ptr<const GptEpochIndex> e = epoch_index(epoch);
    const int64_t p = e->shuffle()[k];
    int64_t d = e->sample_doc()[p], off = e->sample_offset()[p];
    size_t filled = 0;
    while (filled < out.size()) {
      FOLDMOE_CHECK(d < e->num_documents(), "sample {} of epoch {} runs past the epoch", p, epoch);
      const int64_t seq = e->documents()[d];
      const int64_t take = std::min<int64_t>(data_.sequence_length(seq) - off, out.size() - filled);
      data_.read(seq, off, take, out.data() + filled);
      filled += take;
      ++d;
      off = 0;
    }
  }

  std::vector<std::string> cache_files() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return files_;
  }

 private:
  std::shared_ptr<const GptEpochIndex> epoch_index(int64_t epoch) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (auto it = recent_.find(epoch); it != recent_.end()) return it->second;
    const std::string path = fmt::format("{}-e{}.fmidx", cache_stem_, epoch);
    std::shared_ptr<const GptEpochIndex> e = GptEpochIndex::load(path, range_.size(), samples_);
    if (e && !e->consistent_with(data_, range_, seq_len_)) e = nullptr;
    if (e) {
      files_.push_back(path);
    } else {
      e = GptEpochIndex::build(data_, range_, seq_len_,
                               shuffle_key(seed_, static_cast<int>(split_), epoch, ShufflePurpose::Documents),
                               shuffle_key(seed_, static_cast<int>(split_), epoch, ShufflePurpose::Samples));
      std::string why;
      if (!cache_disabled_ && e->save(path, &why)) {
        files_.push_back(path);
      } else if (!cache_disabled_) {
        cache_disabled_ = true;
        std::fprintf(stderr,
                     "note: cannot write the GPT index cache %s (%s); building the indices in memory instead (set "
                     "[data] cache_dir to a writable folder to keep them)\n",
                     path.c_str(), why.c_str());
      }
    }
    // Keep a few epochs mapped: training moves forward, evaluation may revisit one epoch.
    if (recent_.size() >= 3) recent_.erase(recent_.begin());
    recent_[epoch] = e;
    return e;
  }

  IndexedDataset data_;
  SequenceRange range_;
  Split split_;
  int seq_len_;
  uint64_t seed_;
  int64_t tokens_ = 0, samples_ = 0;
  std::string key_, cache_stem_;
  mutable std::mutex mutex_;
  mutable std::map<int64_t, std::shared_ptr<const GptEpochIndex>> recent_;
  mutable std::vector<std::string> files_;
  mutable bool cache_disabled_ = false;
};

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::Train:
      return "train";
    case Split::Valid:
      return "valid";
    case Split::Test:
      return "test";
  }
  return "?";
}

struct GptDataset::Impl {
  GptDatasetSpec spec;
  Split split;
  std::vector<std::unique_ptr<Source>> sources;
  std::unique_ptr<BlendIndex> blend;  // null for a single dataset
  std::string fingerprint;
};

GptDataset::GptDataset(const GptDatasetSpec& spec, Split split) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.spec = spec;
  m.split = split;
  FOLDMOE_CHECK(spec.seq_len >= 1, "GptDataset seq_len {}", spec.seq_len);
  if (spec.paths.empty())
    user_error(
        "data error D8: no dataset prefixes were given.\n  fix: list at least one dataset prefix (the path "
        "without .bin/.idx) in [data] paths");
  if (!spec.weights.empty() && spec.weights.size() != spec.paths.size())
    user_error(
        "data error D9: {} blend weights for {} datasets.\n  fix: give one weight per dataset prefix, or none "
        "(weights by size)",
        spec.weights.size(), spec.paths.size());
  for (size_t i = 0; i < spec.weights.size(); ++i)
    if (!std::isfinite(spec.weights[i]) || !(spec.weights[i] > 0))
      user_error(
          "data error D9: blend weight {} (of {}) is {}; weights must be finite and > 0.\n  fix: give {} a "
          "positive weight, or leave it out of the blend",
          i + 1, spec.paths[i], spec.weights[i], spec.paths[i]);
  const std::array<double, 3> fractions = parse_split(spec.split, "[data] split");
  std::string fp = fmt::format("gpt-v{}|{}|{}|{}|{}|{}", kFormatVersion, fractions[0], fractions[1], fractions[2],
                               spec.seq_len, spec.seed);
  for (const std::string& path : spec.paths) {
    IndexedDataset data = IndexedDataset::open(path);
    const SequenceRange range = split_range(fractions, static_cast<int>(split), data.num_sequences());
    auto src = std::make_unique<Source>(std::move(data), range, split, spec);
    if (src->samples_per_epoch() == 0)
      user_error(
          "data error D8: the {} split of {} is {}: split \"{}\" gives it sequences {}..{} of {} with {} "
          "tokens, and one sample needs seq_len + 1 = {}.\n  fix: give the {} split a larger share of the "
          "split string, use more data or a shorter seq_len",
          split_name(split), path, range.size() == 0 ? "empty" : "too small", spec.split, range.begin, range.end,
          src->data().num_sequences(), src->tokens(), spec.seq_len + 1, split_name(split));
    fp += "|" + src->key();
    m.sources.push_back(std::move(src));
  }
  if (m.sources.size() > 1) {
    std::vector<double> w = spec.weights;
    if (w.empty())
      for (const auto& s : m.sources) w.push_back(static_cast<double>(s->samples_per_epoch()));
    m.blend = std::make_unique<BlendIndex>(w);
    for (double x : m.blend->weights()) fp += fmt::format("|{}", x);
  }
  m.fingerprint = hash16(fp);
}

GptDataset::~GptDataset() = default;
GptDataset::GptDataset(GptDataset&&) noexcept = default;

std::pair<int, int64_t> GptDataset::locate(int64_t index) const {
  FOLDMOE_CHECK(index >= 0, "sample {}", index);
  if (!impl_->blend) return {0, index};
  return impl_->blend->locate(index);
}

void GptDataset::sample(int64_t index, std::span<int32_t> out) const {
  FOLDMOE_CHECK(out.size() == static_cast<size_t>(impl_->spec.seq_len) + 1, "sample buffer of {} for seq_len {}",
                out.size(), impl_->spec.seq_len);
  const auto [d, j] = locate(index);
  impl_->sources[d]->sample(j, out);
}

int64_t GptDataset::samples_per_epoch() const {
  int64_t n = 0;
  for (const auto& s : impl_->sources) n += s->samples_per_epoch();
  return n;
}

int32_t GptDataset::max_token_id() const {
  int32_t m = -1;
  for (const auto& s : impl_->sources) m = std::max(m, s->data().max_token_id());
  return m;
}

std::string GptDataset::fingerprint() const {
  return impl_->fingerprint;
}

std::vector<double> GptDataset::weights() const {
  return impl_->blend ? impl_->blend->weights() : std::vector<double>{1.0};
}

std::vector<std::string> GptDataset::cache_files() const {
  std::vector<std::string> all;
  for (const auto& s : impl_->sources) {
    auto f = s->cache_files();
    all.insert(all.end(), f.begin(), f.end());
  }
  return all;
}

std::string GptDataset::describe() const {
  const Impl& m = *impl_;
  std::string parts;
  const std::vector<double> w = weights();
  for (size_t i = 0; i < m.sources.size(); ++i) {
    const Source& s = *m.sources[i];
    parts +=
        fmt::format("{}{} (seqs {}..{}, {} tokens{})", i ? ", " : "", s.data().prefix(), s.range().begin, s.range().end,
                    s.tokens(), m.sources.size() > 1 ? fmt::format(", weight {:.3f}", w[i]) : std::string());
  }
  return fmt::format("gpt {} split \"{}\": {} samples/epoch of {}+1 tokens, seed {}, from {}", split_name(m.split),
                     m.spec.split, samples_per_epoch(), m.spec.seq_len, m.spec.seed, parts);
}

}  // namespace foldmoe::data
