// Checkpoints: bit-exact round trip, and every kind of damage or mismatch is a UserError; a
// failed save leaves the previous checkpoint as it was.
#include "train/checkpoint.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <stdexcept>

#include "core/crc32.h"
#include "core/rng.h"
#include "tiny_train_state.h"

using namespace foldmoe;
using namespace foldmoe::train;
namespace fs = std::filesystem;

namespace {

// The tiny model of every test here (tests/unit/tiny_train_state.h).
using Model = foldmoe::test_support::TinyTrainState;
using foldmoe::test_support::spec;

class Checkpoint : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("foldmoe_ckpt_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  std::string dir(const std::string& name = "ckpt") const { return (root_ / name).string(); }
  fs::path root_;
};

bool same_bytes(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, size_t(n) * 4) == 0; }

// Loads and expects a UserError mentioning every fragment.
void expect_load_error(const std::string& d, TrainState& st, std::initializer_list<const char*> fragments) {
  try {
    load_checkpoint(d, st);
    FAIL() << "no error loading " << d;
  } catch (const UserError& e) {
    const std::string msg = e.what();
    for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "missing '" << f << "' in: " << msg;
  }
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_F(Checkpoint, RoundTripBitExact) {
  Model a(7);
  save_checkpoint(dir(), a.state);
  EXPECT_TRUE(checkpoint_is_complete(dir()));
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "manifest.json", "COMPLETE"})
    EXPECT_TRUE(fs::exists(fs::path(dir()) / f)) << f;

  Model b(99);  // different values everywhere
  load_checkpoint(dir(), b.state);
  for (auto [pa, pb] : {std::pair{&a.dense, &b.dense}, std::pair{&a.expert, &b.expert}})
    for (int i = 0; i < pa->size(); ++i)
      EXPECT_TRUE(same_bytes(pa->params() + pa->offset(i), pb->params() + pb->offset(i), shape_numel(pa->spec(i).shape)))
          << pa->spec(i).name;
  for (auto [va, vb] : {std::pair{&a.md, &b.md}, std::pair{&a.vd, &b.vd}})
    for (int i = 0; i < a.dense.size(); ++i)
      EXPECT_TRUE(same_bytes(va->data() + a.dense.offset(i), vb->data() + a.dense.offset(i),
                             shape_numel(a.dense.spec(i).shape)));
  for (auto [va, vb] : {std::pair{&a.me, &b.me}, std::pair{&a.ve, &b.ve}})
    for (int i = 0; i < a.expert.size(); ++i)
      EXPECT_TRUE(same_bytes(va->data() + a.expert.offset(i), vb->data() + a.expert.offset(i),
                             shape_numel(a.expert.spec(i).shape)));
  EXPECT_EQ(b.state.buffers, a.state.buffers);
  EXPECT_EQ(b.state.step, 7);
  EXPECT_EQ(b.state.config_toml, a.state.config_toml);
  EXPECT_EQ(b.state.extra, a.state.extra);

  // The manifest records the files' checksums (zlib-compatible CRC-32) and the data position.
  const nlohmann::json m = read_checkpoint_manifest(dir());
  EXPECT_EQ(m["data_position"], 7);
  const std::string model_bytes = slurp(fs::path(dir()) / "model.safetensors");
  EXPECT_EQ(m["files"]["model.safetensors"]["crc32"].get<uint32_t>(), crc32(model_bytes.data(), model_bytes.size()));
  EXPECT_EQ(m["parameters"].size(), 4u);
}

TEST_F(Checkpoint, WeightsOnlyLoad) {
  Model a(3);
  save_checkpoint(dir(), a.state);
  Model b(4);
  const std::vector<float> md_before = b.md;
  b.state.adam_m_dense = b.state.adam_v_dense = b.state.adam_m_expert = b.state.adam_v_expert = nullptr;
  load_checkpoint(dir(), b.state);
  EXPECT_TRUE(same_bytes(a.dense.params(), b.dense.params(), a.dense.total()));
  EXPECT_EQ(b.md, md_before);

  // A checkpoint saved without moments cannot resume an optimizer.
  Model c(5);
  c.state.adam_m_dense = c.state.adam_v_dense = c.state.adam_m_expert = c.state.adam_v_expert = nullptr;
  save_checkpoint(dir("weights"), c.state);
  Model d(6);
  expect_load_error(dir("weights"), d.state, {"no optimizer state"});
}

TEST_F(Checkpoint, MissingDirectory) {
  Model a(1);
  expect_load_error(dir("nope"), a.state, {"does not exist", "checkpoint.load"});
}

TEST_F(Checkpoint, MissingMarker) {
  Model a(1);
  save_checkpoint(dir(), a.state);
  fs::remove(fs::path(dir()) / "COMPLETE");
  EXPECT_FALSE(checkpoint_is_complete(dir()));
  expect_load_error(dir(), a.state, {"incomplete (interrupted save?)"});
}

TEST_F(Checkpoint, TruncatedFile) {
  Model a(1);
  save_checkpoint(dir(), a.state);
  const fs::path f = fs::path(dir()) / "model.safetensors";
  fs::resize_file(f, fs::file_size(f) - 10);
  Model b(2);
  const std::vector<float> before(b.dense.params(), b.dense.params() + b.dense.total());
  expect_load_error(dir(), b.state, {"corrupted", "model.safetensors", "truncated"});
  // Nothing was written into the model.
  EXPECT_TRUE(same_bytes(before.data(), b.dense.params(), b.dense.total()));
}

TEST_F(Checkpoint, FlippedByte) {
  Model a(1);
  save_checkpoint(dir(), a.state);
  const fs::path f = fs::path(dir()) / "optimizer.safetensors";
  std::string bytes = slurp(f);
  bytes[bytes.size() - 5] ^= 0x10;
  std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
  Model b(2);
  expect_load_error(dir(), b.state, {"corrupted", "optimizer.safetensors", "checksum"});
}

TEST_F(Checkpoint, ShapeMismatchNamesParameterAndShapes) {
  Model a(1, /*hidden=*/8);
  save_checkpoint(dir(), a.state);
  Model b(2, /*hidden=*/16);
  expect_load_error(dir(), b.state, {"embedding.weight", "[5, 8]", "[5, 16]", "different model configuration"});
}

TEST_F(Checkpoint, MissingAndExtraParameters) {
  Model a(1);
  save_checkpoint(dir(), a.state);
  // The current model has a parameter the checkpoint lacks.
  {
    ParamArena dense(ArenaKind::Dense), expert(ArenaKind::Expert);
    dense.add(spec("embedding.weight", {5, 8}));
    dense.add(spec("final_norm.weight", {8}));
    dense.add(spec("lm_head.weight", {5, 8}));
    expert.add(spec("layers.0.moe.experts.0.fc1", {6, 8}));
    expert.add(spec("layers.0.moe.experts.1.fc1", {6, 8}));
    dense.allocate();
    expert.allocate();
    TrainState st;
    st.dense = &dense;
    st.expert = &expert;
    st.buffers = a.state.buffers;
    expect_load_error(dir(), st, {"no parameter 'lm_head.weight'", "[5, 8]"});
  }
  // The checkpoint has a parameter the current model lacks (one expert fewer).
  {
    ParamArena dense(ArenaKind::Dense), expert(ArenaKind::Expert);
    dense.add(spec("embedding.weight", {5, 8}));
    dense.add(spec("final_norm.weight", {8}));
    expert.add(spec("layers.0.moe.experts.0.fc1", {6, 8}));
    dense.allocate();
    expert.allocate();
    TrainState st;
    st.dense = &dense;
    st.expert = &expert;
    st.buffers = a.state.buffers;
    expect_load_error(dir(), st, {"'layers.0.moe.experts.1.fc1'", "does not have"});
  }
  // Buffers are checked too.
  Model b(2);
  b.state.buffers["layers.0.moe.router.expert_bias"].push_back(0.0f);
  expect_load_error(dir(), b.state, {"buffer 'layers.0.moe.router.expert_bias'", "[2]", "[3]"});
}

TEST_F(Checkpoint, FailedSaveLeavesExistingCheckpointUntouched) {
  Model a(1);
  save_checkpoint(dir(), a.state);
  const std::string model_before = slurp(fs::path(dir()) / "model.safetensors");
  const std::string manifest_before = slurp(fs::path(dir()) / "manifest.json");

  for (const char* fail_after : {"model.safetensors", "manifest.json", "COMPLETE"}) {
    Model b(2);
    SaveOptions opts;
    opts.after_file = [&](const std::string& f) {
      if (f == fail_after) throw std::runtime_error("simulated failure");
    };
    EXPECT_THROW(save_checkpoint(dir(), b.state, opts), std::runtime_error);
    EXPECT_EQ(slurp(fs::path(dir()) / "model.safetensors"), model_before) << fail_after;
    EXPECT_EQ(slurp(fs::path(dir()) / "manifest.json"), manifest_before) << fail_after;
    // No temporary directory is left behind.
    for (const auto& e : fs::directory_iterator(root_)) EXPECT_EQ(e.path().filename(), "ckpt") << e.path();
  }
  Model c(3);
  load_checkpoint(dir(), c.state);
  EXPECT_EQ(c.state.step, 1);

  // A successful save replaces it, again leaving nothing else behind.
  Model d(2);
  save_checkpoint(dir(), d.state);
  Model e(3);
  load_checkpoint(dir(), e.state);
  EXPECT_EQ(e.state.step, 2);
  EXPECT_TRUE(same_bytes(d.expert.params(), e.expert.params(), d.expert.total()));
  for (const auto& entry : fs::directory_iterator(root_)) EXPECT_EQ(entry.path().filename(), "ckpt");
}

TEST_F(Checkpoint, RefusesToReplaceNonCheckpointDirectory) {
  fs::create_directories(dir("data"));
  std::ofstream(fs::path(dir("data")) / "precious.txt") << "keep me";
  Model a(1);
  EXPECT_THROW(save_checkpoint(dir("data"), a.state), UserError);
  EXPECT_TRUE(fs::exists(fs::path(dir("data")) / "precious.txt"));
  // An empty directory, and nested parents that do not exist yet, are fine.
  fs::create_directories(dir("empty"));
  save_checkpoint(dir("empty"), a.state);
  save_checkpoint(dir("a/b/c"), a.state);
  EXPECT_TRUE(checkpoint_is_complete(dir("empty")));
  EXPECT_TRUE(checkpoint_is_complete(dir("a/b/c")));
}

// The checksum is zlib's CRC-32 (Python: zlib.crc32(b"123456789") == 0xcbf43926).
TEST(Crc32, KnownAnswer) {
  EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
  EXPECT_EQ(crc32("", 0), 0u);
  EXPECT_EQ(crc32("6789", 4, crc32("12345", 5)), 0xCBF43926u);
}

// Rule C3: the manifest carries a checksum over its own canonical JSON; an edited step is caught.
TEST_F(Checkpoint, EditedManifestStepIsRefused) {
  Model a(7);
  save_checkpoint(dir(), a.state);
  const fs::path manifest = fs::path(dir()) / "manifest.json";
  nlohmann::json m = nlohmann::json::parse(slurp(manifest));
  ASSERT_TRUE(m.contains("checksum"));
  m["step"] = 8;
  std::ofstream(manifest, std::ios::trunc) << m.dump(2);
  Model b(9);
  expect_load_error(dir(), b.state, {"C3", "manifest.json fails its own checksum", "edited"});
  EXPECT_EQ(b.state.step, 9);  // unchanged
  m.erase("checksum");
  std::ofstream(manifest, std::ios::trunc) << m.dump(2);
  expect_load_error(dir(), b.state, {"C3", "no checksum"});
}

// Format 1 (before the manifest checksum) still loads: a checkpoint saved by an earlier foldmoe
// resumes; its tensor files are still checked by their CRCs.
TEST_F(Checkpoint, FormatOneManifestWithoutChecksumLoads) {
  Model a(7);
  save_checkpoint(dir(), a.state);
  const fs::path manifest = fs::path(dir()) / "manifest.json";
  nlohmann::json m = nlohmann::json::parse(slurp(manifest));
  EXPECT_EQ(m["format_version"], 2);
  m.erase("checksum");
  m["format_version"] = 1;
  std::ofstream(manifest, std::ios::trunc) << m.dump(2);
  Model b(9);
  load_checkpoint(dir(), b.state);
  EXPECT_EQ(b.state.step, 7);
  m["format_version"] = 3;
  std::ofstream(manifest, std::ios::trunc) << m.dump(2);
  expect_load_error(dir(), b.state, {"format version 3", "reads versions 1 and 2"});
}

// Re-indenting or reordering the manifest keeps its content and therefore its checksum.
TEST_F(Checkpoint, ManifestChecksumIgnoresFormatting) {
  Model a(7);
  save_checkpoint(dir(), a.state);
  const fs::path manifest = fs::path(dir()) / "manifest.json";
  const nlohmann::json m = nlohmann::json::parse(slurp(manifest));
  std::ofstream(manifest, std::ios::trunc) << m.dump();
  Model b(9);
  load_checkpoint(dir(), b.state);
  EXPECT_EQ(b.state.step, 7);
}

// Rule C2: a non-finite value is never written to a checkpoint; the message names the tensor.
TEST_F(Checkpoint, NonFiniteValueIsNeverSaved) {
  Model a(7);
  a.expert.params()[a.expert.offset(1) + 3] = std::numeric_limits<float>::quiet_NaN();
  try {
    save_checkpoint(dir(), a.state);
    FAIL() << "saved a NaN";
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("C2"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'layers.0.moe.experts.1.fc1'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("element 3"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(dir()));
  Model b(7);
  b.md[2] = std::numeric_limits<float>::infinity();
  EXPECT_THROW(save_checkpoint(dir(), b.state), UserError);
  EXPECT_FALSE(fs::exists(dir()));
}
