// safetensors: a round trip keeps every byte, and each kind of damage is reported as a UserError
// that names the file and the problem.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <unistd.h>

#include "core/safetensors.h"

using namespace foldmoe;
namespace fs = std::filesystem;

namespace {

// One scratch directory per test process, removed at exit.
struct ScratchDir {
  fs::path path = fs::temp_directory_path() / ("foldmoe_st_test_" + std::to_string(::getpid()));
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::string temp_path(const std::string& name) {
  static ScratchDir scratch;
  fs::create_directories(scratch.path);
  return (scratch.path / name).string();
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A file with a hand-written header and `data_bytes` zero bytes of data.
std::string raw_file(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char(n >> (8 * i));
  return out + header + std::string(data_bytes, '\0');
}

// Expects read_safetensors(path) to throw a UserError whose message contains every fragment.
void expect_error(const std::string& path, std::initializer_list<const char*> fragments) {
  try {
    read_safetensors(path);
    FAIL() << "no error for " << path;
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

SafetensorsFile sample() {
  SafetensorsFile f;
  Tensor a = Tensor::empty({2, 3}, DType::F32);
  for (int i = 0; i < 6; ++i) a.data<float>()[i] = 0.5f * float(i) - 1.25f;
  Tensor b = Tensor::empty({1}, DType::F64);
  b.data<double>()[0] = 3.141592653589793;
  Tensor c = Tensor::empty({2, 2}, DType::I32);
  for (int i = 0; i < 4; ++i) c.data<int32_t>()[i] = -7 + i * 1000000;
  Tensor d = Tensor::empty({3}, DType::I64);
  for (int i = 0; i < 3; ++i) d.data<int64_t>()[i] = (int64_t(1) << 40) * (i - 1);
  Tensor e = Tensor::empty({5}, DType::U8);
  for (int i = 0; i < 5; ++i) e.data<uint8_t>()[i] = uint8_t(250 + i);
  f.tensors["param/a"] = a;
  f.tensors["out/b"] = b;
  f.tensors["batch/tokens"] = c;
  f.tensors["d"] = d;
  f.tensors["mask"] = e;
  f.tensors["empty"] = Tensor::empty({0, 4}, DType::F32);
  f.metadata["config"] = "{\"model\": {\"hidden\": 64}}";
  return f;
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  const std::string path = temp_path("roundtrip.safetensors");
  const SafetensorsFile in = sample();
  write_safetensors(path, in);
  const SafetensorsFile out = read_safetensors(path);
  EXPECT_EQ(out.metadata, in.metadata);
  ASSERT_EQ(out.tensors.size(), in.tensors.size());
  for (const auto& [name, t] : in.tensors) {
    ASSERT_TRUE(out.tensors.count(name)) << name;
    const Tensor& u = out.tensors.at(name);
    EXPECT_EQ(u.dtype(), t.dtype()) << name;
    EXPECT_EQ(u.shape(), t.shape()) << name;
    ASSERT_EQ(u.nbytes(), t.nbytes());
    if (t.nbytes()) {
      EXPECT_EQ(std::memcmp(const_cast<Tensor&>(u).raw(), const_cast<Tensor&>(t).raw(), t.nbytes()), 0) << name;
    }
  }
}

// The standard layout: header length LE u64, header padded with spaces to 8-byte alignment,
// data offsets relative to the data section and contiguous in key order.
TEST(Safetensors, StandardLayout) {
  const std::string path = temp_path("layout.safetensors");
  SafetensorsFile f;
  Tensor t = Tensor::empty({2}, DType::F32);
  t.data<float>()[0] = 1.0f;
  t.data<float>()[1] = -2.0f;
  f.tensors["x"] = t;
  write_safetensors(path, f);
  const std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  EXPECT_EQ((8 + n) % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 8);
  const std::string header = bytes.substr(8, n);
  // JSON followed only by space padding.
  EXPECT_EQ(header.substr(0, header.find_last_not_of(' ') + 1),
            R"({"x":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})");
  float v[2];
  std::memcpy(v, bytes.data() + 8 + n, 8);
  EXPECT_EQ(v[0], 1.0f);
  EXPECT_EQ(v[1], -2.0f);
}

TEST(Safetensors, MissingFile) {
  const std::string path = temp_path("does_not_exist.safetensors");
  EXPECT_THROW(read_safetensors(path), UserError);
}

TEST(Safetensors, FileTooShort) {
  const std::string path = temp_path("short.safetensors");
  write_bytes(path, "abc");
  expect_error(path, {"shorter than the 8-byte header length"});
}

TEST(Safetensors, HeaderLengthBeyondFile) {
  const std::string path = temp_path("hdrlen.safetensors");
  std::string bytes = raw_file("{}      ", 0);
  bytes[0] = char(100);
  write_bytes(path, bytes);
  expect_error(path, {"header claims 100 bytes"});
}

TEST(Safetensors, Truncated) {
  const std::string path = temp_path("trunc.safetensors");
  write_safetensors(path, sample());
  const std::string bytes = read_bytes(path);
  write_bytes(path, bytes.substr(0, bytes.size() - 3));
  expect_error(path, {"beyond the"});
}

TEST(Safetensors, BadJson) {
  const std::string path = temp_path("badjson.safetensors");
  write_bytes(path, raw_file("{\"x\": [1, 2", 0));
  expect_error(path, {"does not parse"});
  // The Python reader refuses a header that does not start with '{' (InvalidHeaderStart) too.
  write_bytes(path, raw_file("[1, 2]  ", 0));
  expect_error(path, {"does not start with '{'"});
}

TEST(Safetensors, UnknownDtype) {
  const std::string path = temp_path("dtype.safetensors");
  write_bytes(path, raw_file(R"({"x":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4));
  expect_error(path, {"'x'", "BF16", "F32, F64, I32, I64, U8"});
}

TEST(Safetensors, OffsetsOutOfRange) {
  const std::string path = temp_path("range.safetensors");
  write_bytes(path, raw_file(R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", 8));
  expect_error(path, {"'x'", "beyond the 8 bytes"});
  write_bytes(path, raw_file(R"({"x":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", 8));
  expect_error(path, {"end before they begin"});
  write_bytes(path, raw_file(R"({"x":{"dtype":"F32","shape":[2],"data_offsets":[-1,7]}})", 8));
  expect_error(path, {"data_offsets"});
}

TEST(Safetensors, SizeNotMatchingShape) {
  const std::string path = temp_path("size.safetensors");
  write_bytes(path, raw_file(R"({"x":{"dtype":"F64","shape":[3],"data_offsets":[0,16]}})", 16));
  expect_error(path, {"'x'", "spans 16 bytes", "needs 24 bytes"});
}

TEST(Safetensors, Overlap) {
  const std::string path = temp_path("overlap.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                             12));
  expect_error(path, {"'a'", "'b'", "overlap"});
}

TEST(Safetensors, MalformedEntries) {
  const std::string path = temp_path("entries.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8));
  expect_error(path, {"'a'", "lacks"});
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8));
  expect_error(path, {"'a'", "negative"});
  write_bytes(path, raw_file(R"({"__metadata__":{"k":3}})", 0));
  expect_error(path, {"metadata value 'k'"});
}

// The exact layout rules (rule C4): the tensors' byte ranges are back to back from offset 0 to the
// end of the file, and the header length covers exactly the JSON and its padding spaces.
TEST(Safetensors, GapBetweenTensors) {
  const std::string path = temp_path("gap.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                             12));
  expect_error(path, {"C4", "'b'", "starts at data offset 8", "4 bytes belong to no tensor"});
}

TEST(Safetensors, DataNotStartingAtZero) {
  const std::string path = temp_path("start.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8));
  expect_error(path, {"'a'", "starts at data offset 4", "the start of the data"});
}

TEST(Safetensors, TrailingBytesAfterData) {
  const std::string path = temp_path("trailing.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", 5));
  expect_error(path, {"holds 5 bytes but the tensors cover 4", "after tensor 'a'"});
  write_bytes(path, raw_file(R"({})", 3));
  expect_error(path, {"holds 3 bytes but the tensors cover 0"});
}

TEST(Safetensors, DuplicateTensorName) {
  const std::string path = temp_path("dup.safetensors");
  write_bytes(path, raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                             R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             8));
  expect_error(path, {"names 'a' twice"});
}

TEST(Safetensors, HeaderLengthOffByOne) {
  const std::string path = temp_path("offbyone.safetensors");
  write_safetensors(path, sample());
  const std::string good = read_bytes(path);
  for (const int delta : {-1, +1}) {
    std::string bytes = good;
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
    n = uint64_t(int64_t(n) + delta);
    for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char(n >> (8 * i));
    write_bytes(path, bytes);
    expect_error(path, {"C4"});
  }
  // Leading whitespace is not padding: the header must start with '{'.
  write_bytes(path, raw_file(R"( {"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}})", 1));
  expect_error(path, {"does not start with '{'"});
  // Trailing spaces are the format's padding.
  write_bytes(path, raw_file(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}      )", 1));
  EXPECT_EQ(read_safetensors(path).tensors.at("a").numel(), 1);
}
