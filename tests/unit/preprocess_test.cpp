// `foldmoe preprocess` as a library call (so the input reader and the worker pipeline also run under
// ASan): documents come out in input order for any worker count, across 1 MB read and chunk
// boundaries, from plain and gzip files; each kind of bad input is the right rule with file:line.
#include "data/preprocess.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include "core/check.h"
#include "data/indexed_dataset.h"
#include "data/text_tokenizer.h"
#include "data/tokenizer.h"
#include "indexed_data_util.h"

using namespace foldmoe;
using namespace foldmoe::data;
using namespace foldmoe::data::testing;

namespace {

std::vector<std::vector<int32_t>> read_all(const std::string& prefix) {
  const IndexedDataset d = IndexedDataset::open(prefix);
  std::vector<std::vector<int32_t>> out;
  for (int64_t s = 0; s < d.num_sequences(); ++s) {
    out.emplace_back(static_cast<size_t>(d.sequence_length(s)));
    d.read(s, 0, d.sequence_length(s), out.back().data());
  }
  return out;
}

PreprocessOptions options(const std::string& input, const std::string& out) {
  PreprocessOptions o;
  o.input = input;
  o.output_prefix = out;
  o.tokenizer = "char";
  o.progress = "off";
  return o;
}

std::string error_of(const PreprocessOptions& o) {
  try {
    preprocess(o, nullptr);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

void write_gz(const std::string& path, const std::string& text) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, text.data(), static_cast<unsigned>(text.size())), static_cast<int>(text.size()));
  gzclose(f);
}

}  // namespace

TEST(Preprocess, ManyChunksKeepInputOrderForAnyWorkerCount) {
  // About 3 MB of JSON lines of varying length: several 1 MB reads and chunks, lines across them.
  std::string jsonl;
  std::vector<std::vector<int32_t>> want;
  for (int i = 0; jsonl.size() < 3'000'000; ++i) {
    std::string text = "doc " + std::to_string(i) + std::string(static_cast<size_t>(i * 37 % 300), 'a' + i % 26);
    jsonl += "{\"text\": \"" + text + "\"}" + (i % 3 == 0 ? "\r\n" : "\n");
    want.push_back(CharTokenizer::encode(text));
    want.back().push_back(CharTokenizer::kEos);
  }
  jsonl.pop_back();  // the last line has no newline
  const std::string in = scratch_path("many.jsonl");
  write_bytes(in, jsonl);
  write_gz(in + ".gz", jsonl);
  std::string first_bin;
  for (const auto& [input, workers] : std::vector<std::pair<std::string, int>>{{in, 1}, {in, 5}, {in + ".gz", 3}}) {
    PreprocessOptions o = options(input, scratch_path("many_out_" + std::to_string(workers)));
    o.workers = workers;
    o.append_eod = true;
    const PreprocessStats s = preprocess(o, nullptr);
    EXPECT_EQ(s.documents, static_cast<int64_t>(want.size()));
    EXPECT_EQ(s.input_bytes, jsonl.size());
    EXPECT_EQ(read_all(o.output_prefix), want) << input << " with " << workers << " workers";
    if (first_bin.empty()) first_bin = read_bytes(o.output_prefix + ".bin");
    EXPECT_EQ(read_bytes(o.output_prefix + ".bin"), first_bin);
  }
}

TEST(Preprocess, InvalidUtf8IsD11WithTheLine) {
  const std::vector<std::string> bad = {"\xC0\x80", "\xED\xA0\x80",     "\xF5\x80\x80\x80", "ab\xE2\x82",
                                        "\x80",     "\xF0\x8F\xBF\xBF", "\xF4\x90\x80\x80"};
  for (size_t i = 0; i < bad.size(); ++i) {
    const std::string in = scratch_path("utf8_" + std::to_string(i) + ".txt");
    write_bytes(in, "fine\n" + bad[i] + "\n");
    PreprocessOptions o = options(in, scratch_path("utf8_out"));
    o.input_format = "text";
    const std::string e = error_of(o);
    EXPECT_NE(e.find("error D11:"), std::string::npos) << i << ": " << e;
    EXPECT_NE(e.find(in + ":2"), std::string::npos) << e;
    EXPECT_NE(e.find("UTF-8"), std::string::npos) << e;
  }
  // Valid multi-byte UTF-8 passes the check (and is then refused by the ASCII-only char tokenizer).
  const std::string in = scratch_path("utf8_ok.txt");
  write_bytes(in, "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80\n");
  PreprocessOptions o = options(in, scratch_path("utf8_ok_out"));
  o.input_format = "text";
  const std::string e = error_of(o);
  EXPECT_NE(e.find("cannot encode"), std::string::npos) << e;
}

TEST(Preprocess, TruncatedGzipIsD14) {
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "{\"text\": \"line " + std::to_string(i) + "\"}\n";
  const std::string whole = scratch_path("whole.jsonl.gz");
  write_gz(whole, text);
  const std::string gz = read_bytes(whole);
  const std::string cut = scratch_path("cut.jsonl.gz");
  write_bytes(cut, gz.substr(0, gz.size() / 2));
  const std::string out = scratch_path("cut_out");
  const std::string e = error_of(options(cut, out));
  EXPECT_NE(e.find("error D14:"), std::string::npos) << e;
  EXPECT_NE(e.find(cut), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(out + ".bin"));
  EXPECT_FALSE(fs::exists(out + ".idx"));
}

namespace {
// A tokenizer with no special tokens at all: one id per byte.
class ByteTokenizer : public Tokenizer {
 public:
  int32_t vocab_size() const override { return 256; }
  std::vector<int32_t> encode(std::string_view text) const override {
    return std::vector<int32_t>(text.begin(), text.end());
  }
  std::string decode(std::span<const int32_t> ids) const override { return std::string(ids.begin(), ids.end()); }
  std::string token_name(int32_t id) const override { return std::to_string(id); }
  std::optional<int32_t> bos_id() const override { return std::nullopt; }
  std::optional<int32_t> eos_id() const override { return std::nullopt; }
  std::optional<int32_t> pad_id() const override { return std::nullopt; }
  std::string describe() const override { return "bytes (256 ids)"; }
};
}  // namespace

TEST(Preprocess, AppendEodWithoutAnEosTokenIsD13BeforeAnythingIsWritten) {
  const std::string in = scratch_path("eod.txt");
  write_bytes(in, "abc\n");
  PreprocessOptions o = options(in, scratch_path("eod_out"));
  o.input_format = "text";
  o.append_eod = true;
  const ByteTokenizer bytes;
  try {
    preprocess(o, bytes, nullptr);
    FAIL() << "expected D13";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("error D13:"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("bytes (256 ids)"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(o.output_prefix + ".bin"));
  // Without --append-eod the same tokenizer works; 256 ids fit uint16.
  o.append_eod = false;
  preprocess(o, bytes, nullptr);
  EXPECT_EQ(read_all(o.output_prefix), (std::vector<std::vector<int32_t>>{{'a', 'b', 'c'}}));
  EXPECT_EQ(IndexedDataset::open(o.output_prefix).dtype(), TokenDType::UInt16);
}
