// The memory-mapped safetensors reader, the sharded streaming writer and the HF directory set:
// round trips checked with the whole-file reader, bf16/f16 conversions on reference bit patterns,
// slices, writes in any order (as ranks do), the index checks, and a fuzz of corrupted headers
// that must give a UserError (never a crash) and agree with the whole-file reader.
#include "core/safetensors_mapped.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "core/safetensors.h"
#include "core/safetensors_dir.h"
#include "core/safetensors_sharded_writer.h"

using namespace foldmoe;
namespace fs = std::filesystem;

namespace {

struct Scratch {
  fs::path path;
  explicit Scratch(const std::string& name)
      : path(fs::temp_directory_path() / ("foldmoe_stm_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string operator/(const std::string& f) const { return (path / f).string(); }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

std::vector<float> iota(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = scale * float(i) - 1.5f;
  return v;
}

// Writes a whole-file safetensors of `tensors` with the (independent) whole-file writer.
std::string write_f32(const std::string& path, const std::map<std::string, std::vector<float>>& tensors,
                      const std::map<std::string, Shape>& shapes) {
  SafetensorsFile f;
  for (const auto& [name, v] : tensors) {
    Tensor t = Tensor::empty(shapes.at(name));
    std::copy(v.begin(), v.end(), t.data<float>());
    f.tensors[name] = t;
  }
  write_safetensors(path, f);
  return path;
}

template <typename F>
std::string error_of(F f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SafetensorsMapped, ReadsWholeTensorsAndSlicesOfAFileTheWholeFileWriterMade) {
  Scratch s("slices");
  const auto a = iota(12, 0.25f), b = iota(5, 3.0f);
  write_f32(s / "m.safetensors", {{"a", a}, {"b", b}}, {{"a", {3, 4}}, {"b", {5}}});
  const MappedSafetensors m(s / "m.safetensors");
  const SafetensorsEntry* ea = m.find("a");
  ASSERT_NE(ea, nullptr);
  EXPECT_EQ(ea->shape, (Shape{3, 4}));
  std::vector<float> out(12);
  m.read_f32(*ea, 0, 12, out.data());
  EXPECT_EQ(out, a);
  std::vector<float> row(4);
  m.read_f32(*ea, 4, 4, row.data());  // row 1
  EXPECT_EQ(row, std::vector<float>(a.begin() + 4, a.begin() + 8));
  EXPECT_EQ(m.find("c"), nullptr);
}

TEST(SafetensorsMapped, Bf16AndF16ConversionsMatchReferenceBitPatterns) {
  // bf16 -> f32 is exact: the bf16 bits are the high half of the f32.
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC040), -3.0f);
  // f32 -> bf16 rounds to nearest, ties to even.
  EXPECT_EQ(f32_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie, even stays
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);  // above the tie
  EXPECT_EQ(f32_to_bf16(std::bit_cast<float>(0x7F7FFFFFu)), 0x7F80);  // max float rounds to inf
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(std::nanf("")))));
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  // f16 reference values (IEEE 754 binary16).
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_f32(0x7C00), INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_TRUE(std::signbit(f16_to_f32(0x8000)));
}

TEST(SafetensorsMapped, ReadsBf16AndF16TensorsAndRefusesOtherDtypesNamingTheTensor) {
  Scratch s("dtypes");
  // A file with one BF16, one F16 and one I32 tensor, header written by hand.
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2],"data_offsets":[4,8]},"i":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xFF);
  bytes += header;
  const uint16_t data[6] = {0x3F80, 0xC040, 0x3C00, 0xC000, 7, 0};
  bytes.append(reinterpret_cast<const char*>(data), sizeof(data));
  write_bytes(s / "d.safetensors", bytes);
  const MappedSafetensors m(s / "d.safetensors");
  std::vector<float> v(2);
  m.read_f32(*m.find("w"), 0, 2, v.data());
  EXPECT_EQ(v, (std::vector<float>{1.0f, -3.0f}));
  m.read_f32(*m.find("h"), 0, 2, v.data());
  EXPECT_EQ(v, (std::vector<float>{1.0f, -2.0f}));
  const std::string e = error_of([&] { m.read_f32(*m.find("i"), 0, 1, v.data()); });
  EXPECT_NE(e.find("H4"), std::string::npos) << e;
  EXPECT_NE(e.find("'i'"), std::string::npos) << e;
  EXPECT_NE(e.find("d.safetensors"), std::string::npos) << e;
}

TEST(ShardedSafetensorsWriter, ShardsReadBackWithTheWholeFileReaderWhateverTheWriteOrder) {
  Scratch s("shards");
  const std::vector<PlannedTensor> plan = {{"z", {4, 8}}, {"a", {16}}, {"m", {2, 3}}, {"b", {10, 10}}};
  // 200 bytes per shard: z (128) + a (64) fit together; b (400) gets its own file.
  const ShardedSafetensorsWriter w(s.path.string(), plan, "F32", 200);
  w.create_files();
  std::map<std::string, std::vector<float>> values;
  for (const auto& t : plan) values[t.name] = iota(shape_numel(t.shape), float(t.name[0]));
  // Written in pieces and backwards, as ranks owning slices would.
  for (auto it = plan.rbegin(); it != plan.rend(); ++it) {
    const auto& v = values[it->name];
    const int64_t n = int64_t(v.size()), half = n / 2;
    w.write(it->name, half, v.data() + half, n - half);
    w.write(it->name, 0, v.data(), half);
  }
  w.write_index();
  EXPECT_EQ(w.num_files(), 3);
  std::ifstream in(s / "model.safetensors.index.json");
  const nlohmann::json index = nlohmann::json::parse(in);
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), (32 + 16 + 6 + 100) * 4u);
  std::map<std::string, std::vector<float>> seen;
  for (int f = 1; f <= 3; ++f) {
    const std::string name = fmt::format("model-{:05d}-of-00003.safetensors", f);
    const SafetensorsFile file = read_safetensors(s / name);
    EXPECT_EQ(file.metadata.at("format"), "pt");
    for (const auto& [tn, t] : file.tensors) {
      EXPECT_EQ(index["weight_map"][tn], name);
      seen[tn] = std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
    }
  }
  EXPECT_EQ(seen, values);
  // The directory set reads the same values through the index.
  const SafetensorsDir dir(s.path.string());
  EXPECT_EQ(dir.names(), (std::vector<std::string>{"a", "b", "m", "z"}));
  std::vector<float> b(100);
  const auto at = dir.find("b");
  at.file->read_f32(*at.entry, 0, 100, b.data());
  EXPECT_EQ(b, values["b"]);
}

TEST(ShardedSafetensorsWriter, Bf16OutputIsTheRoundedValues) {
  Scratch s("bf16");
  const ShardedSafetensorsWriter w(s.path.string(), {{"t", {3}}}, "BF16", 1 << 20);
  w.create_files();
  const float v[3] = {1.0f, std::bit_cast<float>(0x3F818000u), -2.5f};
  w.write("t", 0, v, 3);
  const MappedSafetensors m(s / "model-00001-of-00001.safetensors");
  EXPECT_EQ(m.find("t")->dtype, "BF16");
  std::vector<float> back(3);
  m.read_f32(*m.find("t"), 0, 3, back.data());
  EXPECT_EQ(back, (std::vector<float>{1.0f, bf16_to_f32(0x3F82), -2.5f}));
}

TEST(SafetensorsDir, IndexProblemsNameTheFileAndTheTensor) {
  Scratch s("index");
  const ShardedSafetensorsWriter w(s.path.string(), {{"a", {64}}, {"b", {64}}}, "F32", 256);
  w.create_files();
  w.write_index();
  fs::remove(s / "model-00002-of-00002.safetensors");
  std::string e = error_of([&] { SafetensorsDir d(s.path.string()); });
  EXPECT_NE(e.find("H1"), std::string::npos) << e;
  EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
  EXPECT_NE(e.find("'b'"), std::string::npos) << e;
  // The index puts a tensor in the wrong file.
  write_f32(s / "model-00002-of-00002.safetensors", {{"c", iota(2, 1)}}, {{"c", {2}}});
  e = error_of([&] { SafetensorsDir d(s.path.string()); });
  EXPECT_NE(e.find("'c'"), std::string::npos) << e;
  // No weights at all.
  Scratch empty("empty");
  e = error_of([&] { SafetensorsDir d(empty.path.string()); });
  EXPECT_NE(e.find("model.safetensors"), std::string::npos) << e;
}

TEST(SafetensorsMapped, FuzzedHeadersGiveUserErrorsAndAgreeWithTheWholeFileReader) {
  Scratch s("fuzz");
  write_f32(s / "good.safetensors", {{"alpha", iota(6, 1)}, {"beta", iota(4, 2)}, {"gamma", iota(3, 3)}},
            {{"alpha", {2, 3}}, {"beta", {4}}, {"gamma", {3}}});
  const std::string good = read_bytes(s / "good.safetensors");
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(uint8_t(good[size_t(i)])) << (8 * i);
  std::mt19937_64 rng(2026);
  const std::string alphabet = "{}[]\":,0123456789 abF3I2BDTAU_-e.";
  int accepted = 0, refused = 0;
  for (int trial = 0; trial < 1500; ++trial) {
    std::string bytes = good;
    const int kind = int(rng() % 4);
    if (kind == 0) {  // flip characters of the header
      for (int k = 0; k < 1 + int(rng() % 3); ++k)
        bytes[8 + size_t(rng() % header_len)] = alphabet[rng() % alphabet.size()];
    } else if (kind == 1) {  // truncate anywhere
      bytes.resize(size_t(rng() % bytes.size()));
    } else if (kind == 2) {  // a wrong header length
      const uint64_t len = trial % 2 ? rng() : header_len + (rng() % 17) - 8;
      for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((len >> (8 * i)) & 0xFF);
    } else {  // change a digit of an offset or a shape
      const size_t at = bytes.find_first_of("0123456789", 9 + size_t(rng() % (header_len - 1)));
      if (at < 8 + header_len) bytes[at] = char('0' + rng() % 10);
    }
    const std::string path = s / "fuzzed.safetensors";
    write_bytes(path, bytes);
    bool mapped_ok = true, whole_ok = true;
    try {
      const MappedSafetensors m(path);
      // Whatever the header claims must be readable within the file.
      for (const SafetensorsEntry& e : m.header().entries)
        if (readable_as_f32(e.dtype)) {
          std::vector<float> v(size_t(shape_numel(e.shape)));
          m.read_f32(e, 0, int64_t(v.size()), v.data());
        }
    } catch (const UserError& e) {
      mapped_ok = false;
      EXPECT_NE(std::string(e.what()).find("fuzzed.safetensors"), std::string::npos) << e.what();
    }
    try {
      read_safetensors(path);
    } catch (const UserError&) {
      whole_ok = false;
    }
    // The whole-file reader also refuses dtypes foldmoe checkpoints never hold; the mapped reader
    // only refuses them when read, so it accepts at least what the whole-file reader accepts.
    if (whole_ok) {
      EXPECT_TRUE(mapped_ok) << "trial " << trial;
    }
    (mapped_ok ? accepted : refused)++;
  }
  EXPECT_GT(refused, 500);
  EXPECT_GT(accepted, 10);
}
