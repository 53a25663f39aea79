// GptDataset: split boundaries follow Megatron's split string, every epoch serves each window of
// its shuffled document stream exactly once, epochs repeat with fresh shuffles, the stream is a
// pure function of (data, spec, split, index), blends keep Megatron's shares, and the index cache
// is reused or rebuilt as the data and settings dictate.
#include "data/gpt_dataset.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <thread>

#include "core/check.h"
#include "data/blend_index.h"
#include "data/gpt_split.h"
#include "indexed_data_util.h"

using namespace foldmoe;
using namespace foldmoe::data;
using namespace foldmoe::data::testing;

namespace {

std::vector<int32_t> sample_of(const GptDataset& g, int64_t i, int seq_len) {
  std::vector<int32_t> out(static_cast<size_t>(seq_len) + 1);
  g.sample(i, out);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

GptDatasetSpec spec_for(std::vector<std::string> paths, int seq_len, std::string split = "1,0,0") {
  GptDatasetSpec s;
  s.paths = std::move(paths);
  s.seq_len = seq_len;
  s.split = std::move(split);
  return s;
}

}  // namespace

TEST(GptSplit, BoundariesFollowMegatronsRounding) {
  // 969,30,1 of 1000 sequences: cumulative fractions .969, .999, 1.
  const auto f = parse_split("969,30,1", "split");
  EXPECT_EQ(split_range(f, 0, 1000).begin, 0);
  EXPECT_EQ(split_range(f, 0, 1000).end, 969);
  EXPECT_EQ(split_range(f, 1, 1000).end, 999);
  EXPECT_EQ(split_range(f, 2, 1000).end, 1000);
  // Halves round to even, as Python's round(): 0.5 * 5 = 2.5 -> 2, 0.5 * 3 = 1.5 -> 2.
  const auto h = parse_split("1/1", "split");
  EXPECT_EQ(split_range(h, 0, 5).end, 2);
  EXPECT_EQ(split_range(h, 0, 3).end, 2);
  EXPECT_EQ(split_range(h, 2, 3).size(), 0);
  // A single number is all train.
  const auto one = parse_split("7", "split");
  EXPECT_EQ(split_range(one, 0, 10).end, 10);
  EXPECT_EQ(split_range(one, 1, 10).size(), 0);
}

TEST(GptSplit, BadStringsAreD7) {
  for (const char* bad : {"", "a,b", "1,,1", "1,2,3,4", "-1,2", "0,0,0", "1e999", "1;2"})
    EXPECT_NE(error_of([&] { parse_split(bad, "[data] split"); }).find("error D7:"), std::string::npos) << bad;
}

TEST(GptDataset, AnEpochServesEveryWindowOfItsShuffledStreamOnce) {
  const std::vector<int> lengths = {5, 1, 9, 0, 4, 7, 3, 12, 2, 6};
  const std::string prefix = write_dataset("epoch", labelled_documents(lengths));
  const int L = 4;
  const GptDataset g(spec_for({prefix}, L), Split::Train);
  const int64_t T = 49;
  ASSERT_EQ(g.samples_per_epoch(), (T - 1) / L);
  for (int64_t epoch = 0; epoch < 3; ++epoch) {
    // Each sample is seq_len + 1 consecutive tokens of whole documents: a run of labels d*1000+i.
    // Rebuild the epoch's document stream from the windows: sort windows by where they start.
    std::map<int64_t, std::vector<int32_t>> windows;  // start position in the stream -> tokens
    std::vector<std::vector<int32_t>> samples;
    for (int64_t k = 0; k < g.samples_per_epoch(); ++k)
      samples.push_back(sample_of(g, epoch * g.samples_per_epoch() + k, L));
    // Consecutive windows overlap by one token: the last token of window p is the first of p+1.
    // Chain them: exactly one window starts the chain (its first token is no window's last).
    std::multiset<int32_t> lasts, firsts;
    for (const auto& s : samples) {
      lasts.insert(s.back());
      firsts.insert(s.front());
    }
    std::vector<int32_t> stream;
    std::vector<bool> used(samples.size());
    for (size_t step = 0; step < samples.size(); ++step) {
      int found = -1;
      for (size_t i = 0; i < samples.size() && found < 0; ++i) {
        if (used[i]) continue;
        if (step == 0 ? lasts.count(samples[i].front()) == 0 : samples[i].front() == stream.back()) found = int(i);
      }
      ASSERT_GE(found, 0) << "epoch " << epoch << ": windows do not chain at step " << step;
      used[found] = true;
      stream.insert(stream.end(), samples[found].begin() + (step == 0 ? 0 : 1), samples[found].end());
    }
    // The stream is whole documents, each once, in some order, then a dropped tail.
    ASSERT_EQ(stream.size(), static_cast<size_t>(g.samples_per_epoch() * L + 1));
    std::set<int> seen;
    for (size_t i = 0; i < stream.size();) {
      const int d = stream[i] / 1000;
      ASSERT_EQ(stream[i] % 1000, 0) << "a document does not start at its first token";
      ASSERT_TRUE(seen.insert(d).second) << "document " << d << " twice in epoch " << epoch;
      for (int j = 0; j < lengths[d] && i < stream.size(); ++j, ++i) ASSERT_EQ(stream[i], d * 1000 + j);
    }
  }
}

TEST(GptDataset, EpochsReshuffleAndTheStreamIsAPureFunctionOfTheIndex) {
  std::vector<int> lengths;
  for (int d = 0; d < 40; ++d) lengths.push_back(1 + (d * 7) % 11);
  const std::string prefix = write_dataset("pure", labelled_documents(lengths));
  const int L = 8;
  GptDatasetSpec spec = spec_for({prefix}, L);
  spec.cache_dir = scratch_path("pure_cache_a");
  fs::create_directories(spec.cache_dir);
  const GptDataset a(spec, Split::Train);
  spec.cache_dir = scratch_path("pure_cache_b");
  fs::create_directories(spec.cache_dir);
  const GptDataset b(spec, Split::Train);
  const int64_t n = a.samples_per_epoch();
  // Any order of access, any instance: the same tokens.
  for (int64_t i : {3 * n + 5, int64_t{0}, n - 1, n, 2 * n + 1, int64_t{7}})
    EXPECT_EQ(sample_of(a, i, L), sample_of(b, i, L)) << i;
  // Epoch 1 is not epoch 0 again.
  int differ = 0;
  for (int64_t k = 0; k < n; ++k) differ += sample_of(a, k, L) != sample_of(a, n + k, L);
  EXPECT_GT(differ, n / 2);
  // Another seed, another stream.
  spec.seed = 99;
  const GptDataset c(spec, Split::Train);
  EXPECT_NE(a.fingerprint(), c.fingerprint());
  differ = 0;
  for (int64_t k = 0; k < n; ++k) differ += sample_of(a, k, L) != sample_of(c, k, L);
  EXPECT_GT(differ, n / 2);
}

TEST(GptDataset, SplitsUseDisjointSequences) {
  const std::string prefix = write_dataset("splits", labelled_documents(std::vector<int>(20, 6)));
  const GptDataset train(spec_for({prefix}, 3, "14,4,2"), Split::Train);
  const GptDataset valid(spec_for({prefix}, 3, "14,4,2"), Split::Valid);
  const GptDataset test(spec_for({prefix}, 3, "14,4,2"), Split::Test);
  const auto docs_of = [](const GptDataset& g) {
    std::set<int> docs;
    for (int64_t i = 0; i < g.samples_per_epoch(); ++i)
      for (int32_t t : sample_of(g, i, 3)) docs.insert(t / 1000);
    return docs;
  };
  const std::set<int> tr = docs_of(train), va = docs_of(valid), te = docs_of(test);
  EXPECT_EQ(*tr.rbegin(), 13);
  EXPECT_EQ(*va.begin(), 14);
  EXPECT_EQ(*va.rbegin(), 17);
  EXPECT_EQ(*te.begin(), 18);
  EXPECT_EQ(train.samples_per_epoch(), (14 * 6 - 1) / 3);
  EXPECT_EQ(valid.samples_per_epoch(), (4 * 6 - 1) / 3);
}

TEST(GptDataset, EmptyOrTooSmallSplitIsD8) {
  const std::string prefix = write_dataset("small", labelled_documents({3, 3, 3}));
  const std::string e1 = error_of([&] { GptDataset(spec_for({prefix}, 2, "1,0,0"), Split::Valid); });
  EXPECT_NE(e1.find("error D8:"), std::string::npos) << e1;
  EXPECT_NE(e1.find(prefix), std::string::npos) << e1;
  EXPECT_NE(e1.find("empty"), std::string::npos) << e1;
  const std::string e2 = error_of([&] { GptDataset(spec_for({prefix}, 9, "1,0,0"), Split::Train); });
  EXPECT_NE(e2.find("error D8:"), std::string::npos) << e2;
  EXPECT_NE(e2.find("too small"), std::string::npos) << e2;
  // 9 tokens hold one sample of 8 + 1.
  EXPECT_EQ(GptDataset(spec_for({prefix}, 8, "1,0,0"), Split::Train).samples_per_epoch(), 1);
}

TEST(GptDataset, BadWeightsAreD9) {
  const std::string a = write_dataset("w_a", labelled_documents({9, 9})),
                    b = write_dataset("w_b", labelled_documents({9}));
  for (const std::vector<double>& w : {std::vector<double>{1.0}, std::vector<double>{1.0, 0.0},
                                       std::vector<double>{1.0, -2.0}, std::vector<double>{1.0, NAN}}) {
    GptDatasetSpec s = spec_for({a, b}, 4);
    s.weights = w;
    const std::string e = error_of([&] { GptDataset(s, Split::Train); });
    EXPECT_NE(e.find("error D9:"), std::string::npos) << e;
  }
}

TEST(BlendIndex, SharesTrackTheWeightsAtEveryPrefix) {
  const BlendIndex b({0.5, 0.3, 0.2});
  std::vector<int64_t> counts(3);
  for (int64_t i = 0; i < 20000; ++i) {
    const auto [d, j] = b.locate(i);
    ASSERT_EQ(j, counts[d]) << "sample " << i << " is not the next sample of dataset " << d;
    ++counts[d];
    for (int k = 0; k < 3; ++k)
      ASSERT_LE(std::abs(double(counts[k]) - b.weights()[k] * double(i + 1)), 1.0 + 1e-9) << i << " " << k;
  }
  // Random access (a later index first) gives the same assignment.
  const BlendIndex c({5.0, 3.0, 2.0});
  EXPECT_EQ(c.locate(19999), b.locate(19999));
  EXPECT_EQ(c.locate(4097), b.locate(4097));
}

TEST(GptDataset, BlendDrawsFromEachDatasetsOwnStream) {
  const std::string a = write_dataset("blend_a", labelled_documents({30, 20, 25}));
  const std::string b = write_dataset("blend_b", labelled_documents({40, 11}));
  GptDatasetSpec spec = spec_for({a, b}, 5);
  spec.weights = {3, 1};
  const GptDataset blend(spec, Split::Train);
  const GptDataset only_a(spec_for({a}, 5), Split::Train), only_b(spec_for({b}, 5), Split::Train);
  EXPECT_EQ(blend.samples_per_epoch(), only_a.samples_per_epoch() + only_b.samples_per_epoch());
  EXPECT_NEAR(blend.weights()[0], 0.75, 1e-12);
  for (int64_t i = 0; i < 100; ++i) {
    const auto [d, j] = blend.locate(i);
    EXPECT_EQ(sample_of(blend, i, 5), sample_of(d == 0 ? only_a : only_b, j, 5)) << i;
  }
  // No weights: by samples per epoch.
  const GptDataset by_size(spec_for({a, b}, 5), Split::Train);
  EXPECT_NEAR(by_size.weights()[0], double(only_a.samples_per_epoch()) / by_size.samples_per_epoch(), 1e-12);
}

TEST(GptDataset, IndexCacheIsReusedAndRebuiltWhenDataOrSettingsChange) {
  const std::string prefix = write_dataset("cache", labelled_documents({10, 20, 30, 5}));
  GptDatasetSpec spec = spec_for({prefix}, 4);
  const std::string dir = scratch_path("cache_dir");
  fs::create_directories(dir);
  spec.cache_dir = dir;
  const auto files_in = [&] {
    std::set<std::string> f;
    for (const auto& e : fs::directory_iterator(dir)) f.insert(e.path().string());
    return f;
  };
  std::vector<int32_t> first;
  {
    const GptDataset g(spec, Split::Train);
    first = sample_of(g, 2, 4);
    ASSERT_EQ(g.cache_files().size(), 1u);
  }
  const std::set<std::string> after_first = files_in();
  ASSERT_EQ(after_first.size(), 1u);
  const auto stamp = fs::last_write_time(*after_first.begin());
  {
    const GptDataset g(spec, Split::Train);  // reuse: same file, not rewritten, same samples
    EXPECT_EQ(sample_of(g, 2, 4), first);
    EXPECT_EQ(files_in(), after_first);
    EXPECT_EQ(fs::last_write_time(*after_first.begin()), stamp);
  }
  {
    GptDatasetSpec other = spec;
    other.seq_len = 5;  // settings change: a new file
    const GptDataset g(other, Split::Train);
    sample_of(g, 0, 5);
    EXPECT_EQ(files_in().size(), 2u);
  }
  // Data change: a new fingerprint, a new file.
  write_dataset("cache", labelled_documents({10, 20, 30, 6}));
  {
    const GptDataset g(spec, Split::Train);
    sample_of(g, 0, 4);
    EXPECT_EQ(files_in().size(), 3u);
  }
  // A damaged cache file is rebuilt, not trusted.
  write_bytes(*after_first.begin(), "garbage");
  write_dataset("cache", labelled_documents({10, 20, 30, 5}));
  {
    const GptDataset g(spec, Split::Train);
    EXPECT_EQ(sample_of(g, 2, 4), first);
  }
  EXPECT_GT(fs::file_size(*after_first.begin()), 7u);
}

TEST(GptDataset, UnwritableCacheFolderFallsBackToMemory) {
  const std::string prefix = write_dataset("nocache", labelled_documents({10, 20}));
  GptDatasetSpec spec = spec_for({prefix}, 4);
  spec.cache_dir = scratch_path("no_such_dir/deeper");
  const GptDataset g(spec, Split::Train);
  const GptDataset reference(spec_for({prefix}, 4), Split::Train);
  EXPECT_EQ(sample_of(g, 1, 4), sample_of(reference, 1, 4));
  EXPECT_TRUE(g.cache_files().empty());
}

TEST(GptDataset, CacheFilesWithDamagedContentsAreRebuiltNotTrusted) {
  const std::string prefix = write_dataset("damaged_cache", labelled_documents({10, 20, 30, 5, 17}));
  GptDatasetSpec spec = spec_for({prefix}, 4);
  spec.cache_dir = scratch_path("damaged_cache_dir");
  fs::create_directories(spec.cache_dir);
  std::vector<std::vector<int32_t>> want;
  std::string file;
  {
    const GptDataset g(spec, Split::Train);
    for (int64_t i = 0; i < g.samples_per_epoch(); ++i) want.push_back(sample_of(g, i, 4));
    file = g.cache_files().at(0);
  }
  const std::string good = read_bytes(file);
  // Overwrite one 8-byte entry at a time (header kept, size kept) with an out-of-range value.
  for (size_t at = 32; at + 8 <= good.size(); at += 8) {
    std::string bad = good;
    const int64_t v = (at / 8) % 2 ? int64_t{1} << 40 : -3;
    std::memcpy(bad.data() + at, &v, 8);
    write_bytes(file, bad);
    const GptDataset g(spec, Split::Train);
    for (int64_t i = 0; i < g.samples_per_epoch(); ++i) ASSERT_EQ(sample_of(g, i, 4), want[i]) << "entry at " << at;
    EXPECT_EQ(read_bytes(file), good) << "the damaged file was not rewritten (entry at " << at << ")";
  }
}

TEST(GptDataset, ConcurrentBuildersOfOneCacheAgree) {
  // Ranks on one host build the same cache file at once: each writes a temporary and renames it.
  std::vector<int> lengths;
  for (int d = 0; d < 300; ++d) lengths.push_back(1 + d * 13 % 50);
  const std::string prefix = write_dataset("concurrent", labelled_documents(lengths), TokenDType::Int32);
  GptDatasetSpec spec = spec_for({prefix}, 16);
  spec.cache_dir = scratch_path("concurrent_cache");
  fs::create_directories(spec.cache_dir);
  const GptDataset reference(spec_for({prefix}, 16), Split::Train);  // cache beside the data
  std::vector<std::vector<std::vector<int32_t>>> got(6);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t)
    threads.emplace_back([&, t] {
      const GptDataset g(spec, Split::Train);
      for (int64_t i = 0; i < 2 * g.samples_per_epoch(); i += 7) got[t].push_back(sample_of(g, i, 16));
    });
  for (auto& th : threads) th.join();
  std::vector<std::vector<int32_t>> want;
  for (int64_t i = 0; i < 2 * reference.samples_per_epoch(); i += 7) want.push_back(sample_of(reference, i, 16));
  for (const auto& g : got) EXPECT_EQ(g, want);
  // Exactly the two epochs' files remain, no temporaries, and they map cleanly on reuse.
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(spec.cache_dir)) names.push_back(e.path().filename().string());
  EXPECT_EQ(names.size(), 2u);
  for (const auto& n : names) EXPECT_EQ(n.find(".tmp"), std::string::npos) << n;
  const GptDataset again(spec, Split::Train);
  EXPECT_EQ(sample_of(again, 7, 16), want[1]);
}
