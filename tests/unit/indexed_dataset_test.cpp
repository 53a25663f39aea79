// Megatron indexed datasets: the bytes foldmoe writes follow the MMIDIDX layout field by field
// (built here from the format description, not from the writer), every integer dtype reads back,
// and each kind of damage is a UserError naming the file, the rule and the fix.
#include "data/indexed_dataset.h"

#include <gtest/gtest.h>

#include <cstring>

#include "core/check.h"
#include "indexed_data_util.h"

using namespace foldmoe;
using namespace foldmoe::data;
using namespace foldmoe::data::testing;

namespace {

template <typename T>
void put(std::string& s, T v) {
  s.append(reinterpret_cast<const char*>(&v), sizeof(T));
}

// The .idx of documents with `lengths` tokens each, in `dtype` of `size` bytes, per the format.
std::string expected_idx(const std::vector<int32_t>& lengths, uint8_t code, int size) {
  std::string s("MMIDIDX\0\0", 9);
  put<uint64_t>(s, 1);
  put<uint8_t>(s, code);
  put<uint64_t>(s, lengths.size());
  put<uint64_t>(s, lengths.size() + 1);
  for (int32_t l : lengths) put<int32_t>(s, l);
  int64_t p = 0;
  for (int32_t l : lengths) {
    put<int64_t>(s, p);
    p += int64_t{l} * size;
  }
  for (size_t d = 0; d <= lengths.size(); ++d) put<int64_t>(s, static_cast<int64_t>(d));
  return s;
}

std::string open_error(const std::string& prefix) {
  try {
    IndexedDataset::open(prefix);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// A valid uint16 dataset of three documents, whose files the damage tests then edit.
std::string healthy(const std::string& name) {
  return write_dataset(name, {{1, 2, 3}, {4, 5}, {6, 7, 8, 9}}, TokenDType::UInt16);
}

// Overwrites bytes of a file at `offset`.
template <typename T>
void poke(const std::string& path, size_t offset, T v) {
  std::string b = read_bytes(path);
  std::memcpy(b.data() + offset, &v, sizeof(T));
  write_bytes(path, b);
}

constexpr size_t kLengths = 34;  // header bytes: where the sequence lengths start

}  // namespace

TEST(IndexedDataset, WritesTheMegatronLayoutByteForByte) {
  const std::vector<std::vector<int32_t>> docs = {{5, 6, 7}, {}, {65535, 0}, {9}};
  const std::string prefix = write_dataset("layout", docs, TokenDType::UInt16);
  EXPECT_EQ(read_bytes(prefix + ".idx"), expected_idx({3, 0, 2, 1}, 8, 2));
  std::string bin;
  for (const auto& d : docs)
    for (int32_t t : d) put<uint16_t>(bin, static_cast<uint16_t>(t));
  EXPECT_EQ(read_bytes(prefix + ".bin"), bin);
}

TEST(IndexedDataset, EveryIntegerDtypeReadsBack) {
  struct Case {
    TokenDType t;
    int32_t lo, hi;
  };
  for (const Case c : {Case{TokenDType::UInt8, 0, 255}, Case{TokenDType::Int8, -128, 127},
                       Case{TokenDType::Int16, -32768, 32767}, Case{TokenDType::UInt16, 0, 65535},
                       Case{TokenDType::Int32, -5, 2147483647}, Case{TokenDType::Int64, -7, 2147483647}}) {
    const std::vector<std::vector<int32_t>> docs = {{c.lo, c.hi, 0}, {1}, {}, {c.hi, c.hi}};
    const std::string prefix = write_dataset(std::string("dtype_") + token_dtype_name(c.t), docs, c.t);
    const IndexedDataset d = IndexedDataset::open(prefix);
    EXPECT_EQ(d.dtype(), c.t);
    EXPECT_EQ(d.num_sequences(), 4);
    EXPECT_EQ(d.num_documents(), 4);
    EXPECT_EQ(std::vector<int64_t>(d.document_indices().begin(), d.document_indices().end()),
              (std::vector<int64_t>{0, 1, 2, 3, 4}));
    EXPECT_EQ(d.num_tokens(), 6);
    for (int64_t s = 0; s < 4; ++s) {
      ASSERT_EQ(d.sequence_length(s), static_cast<int32_t>(docs[s].size()));
      std::vector<int32_t> got(docs[s].size());
      d.read(s, 0, static_cast<int64_t>(got.size()), got.data());
      EXPECT_EQ(got, docs[s]) << token_dtype_name(c.t) << " sequence " << s;
    }
    std::vector<int32_t> mid(1);
    d.read(0, 1, 1, mid.data());
    EXPECT_EQ(mid[0], c.hi);
    if (c.lo >= 0) {
      EXPECT_EQ(d.max_token_id(), c.hi);
    }
  }
}

TEST(IndexedDataset, NegativeTokensAreRefusedAsIds) {
  const IndexedDataset d = IndexedDataset::open(write_dataset("negative", {{3, -1}}, TokenDType::Int16));
  try {
    d.max_token_id();
    FAIL() << "expected a UserError";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("D10"), std::string::npos) << e.what();
  }
}

TEST(IndexedDataset, SmallestDtypeFollowsMegatron) {
  EXPECT_EQ(smallest_token_dtype(98), TokenDType::UInt16);
  EXPECT_EQ(smallest_token_dtype(65499), TokenDType::UInt16);
  EXPECT_EQ(smallest_token_dtype(65500), TokenDType::Int32);
  EXPECT_EQ(smallest_token_dtype(151936), TokenDType::Int32);
}

TEST(IndexedDataset, WriterRefusesTokensThatDoNotFitAndLeavesNoFiles) {
  const std::string prefix = scratch_path("overflow");
  {
    IndexedDatasetWriter w(prefix, TokenDType::UInt16);
    EXPECT_THROW(w.add_document(std::vector<int32_t>{1, 70000}), UserError);
  }
  EXPECT_FALSE(fs::exists(prefix + ".bin"));
  EXPECT_FALSE(fs::exists(prefix + ".idx"));
  for (const auto& e : fs::directory_iterator(fs::path(prefix).parent_path()))
    EXPECT_EQ(e.path().filename().string().find("overflow"), std::string::npos) << e.path();
}

TEST(IndexedDataset, FingerprintFollowsTheContent) {
  const std::string a = write_dataset("fp_a", {{1, 2, 3}});
  const std::string b = write_dataset("fp_b", {{1, 2, 3}});
  const std::string c = write_dataset("fp_c", {{1, 2}, {3}});
  EXPECT_EQ(IndexedDataset::open(a).fingerprint(), IndexedDataset::open(b).fingerprint());
  EXPECT_NE(IndexedDataset::open(a).fingerprint(), IndexedDataset::open(c).fingerprint());
  EXPECT_EQ(IndexedDataset::open(a).fingerprint().size(), 16u);
}

// ---- damage: each names the file, the rule and a fix ----------------------------------------

struct Damage {
  const char* name;
  const char* rule;
  const char* file;  // ".idx" or ".bin": the file the message must name
  void (*apply)(const std::string& prefix);
};

class IndexedDatasetDamage : public ::testing::TestWithParam<Damage> {};

TEST_P(IndexedDatasetDamage, IsAUserErrorNamingFileRuleAndFix) {
  const Damage& d = GetParam();
  const std::string prefix = healthy(std::string("damage_") + d.name);
  d.apply(prefix);
  const std::string msg = open_error(prefix);
  ASSERT_FALSE(msg.empty()) << d.name << ": no error";
  EXPECT_NE(msg.find(std::string("error ") + d.rule + ":"), std::string::npos) << msg;
  EXPECT_NE(msg.find(prefix + d.file), std::string::npos) << msg;
  EXPECT_NE(msg.find("fix:"), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(
    All, IndexedDatasetDamage,
    ::testing::Values(
        Damage{"missing_idx", "D1", ".idx", [](const std::string& p) { fs::remove(p + ".idx"); }},
        Damage{"missing_bin", "D1", ".bin", [](const std::string& p) { fs::remove(p + ".bin"); }},
        Damage{"idx_is_dir", "D1", ".idx",
               [](const std::string& p) {
                 fs::remove(p + ".idx");
                 fs::create_directory(p + ".idx");
               }},
        Damage{"wrong_magic", "D2", ".idx", [](const std::string& p) { poke<char>(p + ".idx", 0, 'X'); }},
        Damage{"short_header", "D2", ".idx",
               [](const std::string& p) { write_bytes(p + ".idx", read_bytes(p + ".idx").substr(0, 20)); }},
        Damage{"version_2", "D2", ".idx", [](const std::string& p) { poke<uint64_t>(p + ".idx", 9, 2); }},
        Damage{"dtype_code_0", "D2", ".idx", [](const std::string& p) { poke<uint8_t>(p + ".idx", 17, 0); }},
        Damage{"dtype_code_9", "D2", ".idx", [](const std::string& p) { poke<uint8_t>(p + ".idx", 17, 9); }},
        Damage{"float_dtype", "D10", ".idx", [](const std::string& p) { poke<uint8_t>(p + ".idx", 17, 7); }},
        Damage{"truncated_idx", "D3", ".idx",
               [](const std::string& p) {
                 const std::string b = read_bytes(p + ".idx");
                 write_bytes(p + ".idx", b.substr(0, b.size() - 3));
               }},
        Damage{"huge_sequence_count", "D3", ".idx",
               [](const std::string& p) { poke<uint64_t>(p + ".idx", 18, uint64_t{1} << 62); }},
        Damage{"zero_document_entries", "D3", ".idx", [](const std::string& p) { poke<uint64_t>(p + ".idx", 26, 0); }},
        Damage{"trailing_bytes", "D3", ".idx",
               [](const std::string& p) { write_bytes(p + ".idx", read_bytes(p + ".idx") + "xy"); }},
        Damage{"negative_length", "D4", ".idx", [](const std::string& p) { poke<int32_t>(p + ".idx", kLengths, -1); }},
        Damage{"pointer_past_bin", "D4", ".idx",
               [](const std::string& p) { poke<int64_t>(p + ".idx", kLengths + 12 + 8 * 2, 1000); }},
        Damage{"pointer_not_contiguous", "D4", ".idx",
               [](const std::string& p) { poke<int64_t>(p + ".idx", kLengths + 12 + 8 * 1, 4); }},
        Damage{"bin_truncated", "D4", ".bin",
               [](const std::string& p) {
                 const std::string b = read_bytes(p + ".bin");
                 write_bytes(p + ".bin", b.substr(0, b.size() - 2));
               }},
        Damage{"bin_too_long", "D4", ".bin",
               [](const std::string& p) { write_bytes(p + ".bin", read_bytes(p + ".bin") + "zz"); }},
        Damage{"documents_not_from_0", "D5", ".idx",
               [](const std::string& p) { poke<int64_t>(p + ".idx", kLengths + 36, 1); }},
        Damage{"documents_not_monotonic", "D5", ".idx",
               [](const std::string& p) {
                 poke<int64_t>(p + ".idx", kLengths + 36 + 8, 2);
                 poke<int64_t>(p + ".idx", kLengths + 36 + 16, 1);
               }},
        Damage{"documents_past_sequences", "D5", ".idx",
               [](const std::string& p) { poke<int64_t>(p + ".idx", kLengths + 36 + 16, 7); }},
        Damage{"documents_end_short", "D5", ".idx",
               [](const std::string& p) { poke<int64_t>(p + ".idx", kLengths + 36 + 24, 2); }}),
    [](const ::testing::TestParamInfo<Damage>& i) { return std::string(i.param.name); });
