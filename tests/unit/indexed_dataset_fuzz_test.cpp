// Fuzzing the .idx reader: thousands of mutated and truncated index files (bytes flipped, counts and
// pointers overwritten with edge values, cut at every length) must each open as a valid dataset or
// fail with a UserError; never crash, hang or read out of bounds (this file also runs under ASan).
// A file that opens must be fully readable.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <random>

#include "core/check.h"
#include "data/indexed_dataset.h"
#include "indexed_data_util.h"

using namespace foldmoe;
using namespace foldmoe::data;
using namespace foldmoe::data::testing;

namespace {

// Opens and, if valid, reads every token of every sequence. Returns true when it opened.
bool open_and_read_all(const std::string& prefix) {
  try {
    const IndexedDataset d = IndexedDataset::open(prefix);
    std::vector<int32_t> buf;
    for (int64_t s = 0; s < d.num_sequences(); ++s) {
      buf.resize(static_cast<size_t>(d.sequence_length(s)));
      d.read(s, 0, static_cast<int64_t>(buf.size()), buf.data());
    }
    const auto docs = d.document_indices();
    EXPECT_EQ(docs.front(), 0);
    EXPECT_EQ(docs.back(), d.num_sequences());
    try {
      d.max_token_id();
    } catch (const UserError&) {
    }
    return true;
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("fix:"), std::string::npos) << e.what();
    return false;
  }
}

}  // namespace

TEST(IndexedDatasetFuzz, MutatedIndexFilesNeverCrash) {
  std::vector<std::vector<int32_t>> docs;
  for (int d = 0; d < 7; ++d) docs.push_back(std::vector<int32_t>(static_cast<size_t>(d * 3 % 5), d));
  const std::string base = write_dataset("fuzz_base", docs, TokenDType::Int32);
  const std::string idx = read_bytes(base + ".idx"), bin = read_bytes(base + ".bin");
  const std::string prefix = scratch_path("fuzz");
  write_bytes(prefix + ".bin", bin);
  ASSERT_TRUE((write_bytes(prefix + ".idx", idx), open_and_read_all(prefix)));

  std::mt19937_64 rng(20261206);
  const int64_t edges[] = {0, 1, -1, 2, 7, 8, 34, 1000, INT32_MAX, INT64_MAX, INT64_MIN, int64_t{1} << 40};
  int trials = 0, opened = 0;
  // Every truncation.
  for (size_t n = 0; n < idx.size(); ++n, ++trials) {
    write_bytes(prefix + ".idx", idx.substr(0, n));
    opened += open_and_read_all(prefix);
  }
  // Random byte flips, word overwrites with edge values, and appended junk.
  for (int t = 0; t < 3200; ++t, ++trials) {
    std::string m = idx;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      const size_t at = rng() % m.size();
      switch (rng() % 4) {
        case 0:
          m[at] = static_cast<char>(rng());
          break;
        case 1:
          m[at] ^= static_cast<char>(1u << (rng() % 8));
          break;
        case 2: {
          const int64_t v = edges[rng() % std::size(edges)];
          const size_t width = rng() % 2 ? 8 : 4;
          if (at + width <= m.size()) std::memcpy(m.data() + at, &v, width);
          break;
        }
        default:
          m.append(rng() % 16, static_cast<char>(rng()));
      }
    }
    write_bytes(prefix + ".idx", m);
    opened += open_and_read_all(prefix);
  }
  // Shorter .bin files against the intact index.
  write_bytes(prefix + ".idx", idx);
  for (size_t n = 0; n < bin.size(); n += 3, ++trials) {
    write_bytes(prefix + ".bin", bin.substr(0, n));
    EXPECT_FALSE(open_and_read_all(prefix)) << "a .bin of " << n << " bytes was accepted";
  }
  EXPECT_GE(trials, 3000);
  RecordProperty("trials", trials);
  RecordProperty("opened", opened);
}
