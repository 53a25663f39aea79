// Fuzz of the file readers a user can point foldmoe at: safetensors files and checkpoint
// manifests. Seeded mutations (tests/unit/fuzz_mutator.h) of files foldmoe wrote itself; every case
// must end in a UserError or a load whose result is consistent; any other exception, a crash
// (ASan/UBSan in scripts/test.sh) or a hang fails.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/arena.h"
#include "core/check.h"
#include "core/safetensors.h"
#include "fuzz_mutator.h"
#include "train/checkpoint.h"

using namespace foldmoe;
using foldmoe::fuzz::Mutator;
using foldmoe::fuzz::Syntax;
namespace fs = std::filesystem;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void spit(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << bytes;
}

struct TempDir {
  fs::path path = fs::temp_directory_path() / ("foldmoe_fuzz_" + std::to_string(::getpid()) + "_" +
                                               ::testing::UnitTest::GetInstance()->current_test_info()->name());
  TempDir() {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

struct Tally {
  int valid = 0, user_errors = 0;
  std::vector<std::string> failures;

  template <typename F>
  void run(int case_no, F&& f) {
    try {
      f();
      ++valid;
    } catch (const UserError&) {
      ++user_errors;
    } catch (const std::exception& e) {
      failures.push_back("case " + std::to_string(case_no) + ": " + typeid(e).name() + ": " + e.what());
    }
  }
  void expect_clean(int cases, int min_valid) const {
    std::printf("fuzz: %d cases: %d valid, %d UserError, %zu other\n", cases, valid, user_errors, failures.size());
    EXPECT_EQ(valid + user_errors + int(failures.size()), cases);
    for (size_t i = 0; i < failures.size() && i < 10; ++i) ADD_FAILURE() << failures[i];
    EXPECT_TRUE(failures.empty()) << failures.size() << " cases ended in neither success nor UserError";
    EXPECT_GE(valid, min_valid);
    EXPECT_GT(user_errors, cases / 4);
  }
};

// The 8-byte little-endian length, the JSON header, then the data.
std::string with_header(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

}  // namespace

TEST(FuzzFiles, MutatedSafetensorsEndInUserErrorOrConsistentTensors) {
  TempDir tmp;
  const fs::path file = tmp.path / "x.safetensors";
  std::vector<float> a(6), b(4);
  for (size_t i = 0; i < a.size(); ++i) a[i] = float(i) + 0.5f;
  for (size_t i = 0; i < b.size(); ++i) b[i] = -float(i);
  SafetensorsFile f;
  f.tensors["a"] = Tensor::wrap(a.data(), {2, 3});
  f.tensors["layers.0.b"] = Tensor::wrap(b.data(), {4});
  f.metadata = {{"format", "pt"}, {"step", "7"}};
  write_safetensors(file.string(), f);
  const std::string original = slurp(file);
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(uint8_t(original[size_t(i)])) << (8 * i);
  const std::string header = original.substr(8, header_len), data = original.substr(8 + header_len);

  constexpr int kCases = 1000;
  Tally t;
  for (int i = 0; i < kCases; ++i) {
    Mutator m(uint64_t(i) + 200000, Syntax::Json);
    // Half the cases mutate the JSON header and keep the length prefix right (they reach the
    // checks of dtypes, shapes and offsets), half mutate the raw bytes, prefix included.
    const std::string bytes = i % 2 == 0 ? with_header(m.mutate(header), data) : m.mutate(original);
    spit(file, bytes);
    t.run(i, [&] {
      const SafetensorsFile got = read_safetensors(file.string());
      for (const auto& [name, tensor] : got.tensors) {
        // A tensor that loads lies inside the file's data.
        EXPECT_LE(tensor.nbytes(), bytes.size()) << "case " << i << " tensor " << name;
      }
    });
  }
  t.expect_clean(kCases, 1);
}

TEST(FuzzFiles, HandWrittenSafetensorsHeadersAreRefused) {
  TempDir tmp;
  const fs::path file = tmp.path / "x.safetensors";
  const std::string data(64, '\0');
  const std::vector<std::string> headers = {
      R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,16]}})",
      R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551615,8]}})",
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})",
      R"({"a":{"dtype":"F32","shape":[1e400],"data_offsets":[0,4]}})",
      R"({"a":{"dtype":"X99","shape":[1],"data_offsets":[0,4]}})",
      R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4096]}})",
      R"({"a":[1,2,3]})",
      R"([1,2])",
      R"({"__metadata__":{"step":[1]}})",
  };
  for (const std::string& h : headers) {
    spit(file, with_header(h, data));
    EXPECT_THROW(read_safetensors(file.string()), UserError) << h;
  }
  // A length prefix far beyond the file.
  std::string huge = with_header("{}", data);
  for (int i = 0; i < 8; ++i) huge[size_t(i)] = '\xff';
  spit(file, huge);
  EXPECT_THROW(read_safetensors(file.string()), UserError);
}

namespace {

ParamSpec spec(const std::string& name, Shape shape) {
  ParamSpec s;
  s.name = name;
  s.shape = std::move(shape);
  return s;
}

// A tiny model's state: a dense and an expert arena with AdamW moments and one buffer.
struct TinyState {
  ParamArena dense{ArenaKind::Dense}, expert{ArenaKind::Expert};
  std::vector<float> md, vd, me, ve;
  train::TrainState state;
  TinyState() {
    dense.add(spec("embedding.weight", {5, 4}));
    dense.add(spec("final_norm.weight", {4}));
    expert.add(spec("layers.0.moe.experts.0.fc1", {6, 4}));
    dense.allocate();
    expert.allocate();
    dense.initialize(1);
    expert.initialize(1);
    md.assign(size_t(dense.total()), 0.25f), vd.assign(size_t(dense.total()), 0.5f);
    me.assign(size_t(expert.total()), 0.75f), ve.assign(size_t(expert.total()), 1.0f);
    state.dense = &dense, state.expert = &expert;
    state.adam_m_dense = &md, state.adam_v_dense = &vd, state.adam_m_expert = &me, state.adam_v_expert = &ve;
    state.buffers["layers.0.moe.router.expert_bias"] = {0.5f, -0.25f};
    state.step = 3;
    state.config_toml = "[model]\nhidden = 4\n";
    state.extra = {{"lr", 0.001}};
  }
};

}  // namespace

TEST(FuzzFiles, MutatedCheckpointManifestsEndInUserErrorOrAConsistentLoad) {
  TempDir tmp;
  const std::string dir = (tmp.path / "step-00000003").string();
  {
    TinyState saved;
    train::save_checkpoint(dir, saved.state);
  }
  const fs::path manifest = fs::path(dir) / "manifest.json";
  const std::string original = slurp(manifest);
  const TinyState reference;

  constexpr int kCases = 900;
  Tally t;
  int loads = 0;
  for (int i = 0; i < kCases; ++i) {
    Mutator m(uint64_t(i) + 300000, Syntax::Json);
    spit(manifest, m.mutate(original));
    t.run(i, [&] {
      train::read_checkpoint_manifest(dir);
      TinyState s;
      train::load_checkpoint(dir, s.state);
      ++loads;
      // The tensor files are checksummed: whatever the manifest says, the weights that load are
      // the saved ones.
      EXPECT_EQ(std::memcmp(s.dense.params(), reference.dense.params(), size_t(s.dense.total()) * 4), 0)
          << "case " << i;
    });
  }
  spit(manifest, original);
  t.expect_clean(kCases, 1);
  EXPECT_GT(loads, 0);
}
