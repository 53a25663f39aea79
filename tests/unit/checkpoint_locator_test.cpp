// locate_checkpoint: what a user may pass where a checkpoint is expected (a checkpoint, a
// checkpoints directory, a run directory) and the errors for everything else. Checkpoints are
// faked by their COMPLETE marker, the only thing the locator looks at besides names.
#include "train/checkpoint_locator.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <string>

#include <gtest/gtest.h>

#include "core/check.h"

namespace foldmoe::train {
namespace {
namespace fs = std::filesystem;

class CheckpointLocator : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("foldmoe_locator_test_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // A step directory under `parent`, complete (with COMPLETE) or as an interrupted save leaves it.
  std::string step(const std::string& parent, const std::string& name, bool complete) const {
    const fs::path d = root_ / parent / name;
    fs::create_directories(d);
    std::ofstream(d / "manifest.json") << "{}";
    if (complete) std::ofstream(d / "COMPLETE") << "";
    return d.string();
  }
  std::string path(const std::string& rel) const { return (root_ / rel).string(); }

  void expect_error(const std::string& arg, std::initializer_list<const char*> fragments) const {
    try {
      locate_checkpoint(arg, "--checkpoint");
      FAIL() << "no error for " << arg;
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("--checkpoint '" + arg + "'"), std::string::npos) << msg;
      for (const char* f : fragments) EXPECT_NE(msg.find(f), std::string::npos) << "'" << f << "' not in: " << msg;
      EXPECT_EQ(msg.find("delete"), std::string::npos) << msg;
    }
  }

  fs::path root_;
};

TEST_F(CheckpointLocator, CheckpointDirectoryIsTakenAsGiven) {
  const std::string early = step("run/checkpoints", "step-00000002", true);
  step("run/checkpoints", "step-00000004", true);
  EXPECT_EQ(locate_checkpoint(early, "--checkpoint"), early);
  // An incomplete one too: loading it says it is incomplete (one message for that, in checkpoint.cpp).
  const std::string broken = step("run/checkpoints", "step-00000006", false);
  EXPECT_EQ(locate_checkpoint(broken, "--checkpoint"), broken);
}

TEST_F(CheckpointLocator, RunAndCheckpointsDirectoriesGiveTheLatestCompleteStep) {
  step("run/checkpoints", "step-00000002", true);
  const std::string ten = step("run/checkpoints", "step-00000010", true);
  step("run/checkpoints", "step-00000009", true);
  step("run/checkpoints", "step-00000011", false);        // interrupted save: skipped
  step("run/checkpoints", "step-00000012.tmp-99", true);  // not a step name: ignored
  fs::create_directories(root_ / "run/checkpoints/notes");
  std::ofstream(root_ / "run/metrics.jsonl") << "{}\n";
  EXPECT_EQ(locate_checkpoint(path("run"), "--checkpoint"), ten);
  EXPECT_EQ(locate_checkpoint(path("run/checkpoints"), "--checkpoint"), ten);
  EXPECT_TRUE(fs::exists(root_ / "run/checkpoints/step-00000011/manifest.json"));  // left alone
}

TEST_F(CheckpointLocator, StepsCompareByNumberNotByText) {
  step("ck", "step-99", true);
  const std::string big = step("ck", "step-100", true);
  EXPECT_EQ(locate_checkpoint(path("ck"), "--checkpoint"), big);
}

TEST_F(CheckpointLocator, WhatIsNotACheckpointIsNamedWithWhatWasExpected) {
  expect_error(path("missing"), {"does not exist", "run directory"});
  std::ofstream(root_ / "file") << "x";
  expect_error(path("file"), {"is a file, not a directory"});
  fs::create_directories(root_ / "empty");
  expect_error(path("empty"), {"holds no checkpoint", "checkpoints/step-NNNNNNNN"});
  fs::create_directories(root_ / "fresh_run/checkpoints");
  expect_error(path("fresh_run"), {"is a run directory", "saved none yet"});
  step("interrupted/checkpoints", "step-00000003", false);
  expect_error(path("interrupted"), {"no complete checkpoint", "step-00000003", "left as it is"});
  EXPECT_TRUE(fs::exists(root_ / "interrupted/checkpoints/step-00000003/manifest.json"));
}

// checkpoint.load = auto: the latest complete step of a checkpoints directory, or nothing.
TEST_F(CheckpointLocator, LatestCompleteForAuto) {
  EXPECT_TRUE(is_auto_load("auto"));
  EXPECT_TRUE(is_auto_load("latest"));
  EXPECT_FALSE(is_auto_load("runs/x"));
  EXPECT_FALSE(latest_complete_checkpoint(root_ / "nothing-here").has_value());
  step("auto", "step-00000009", true);
  step("auto", "step-00000010", true);
  step("auto", "step-00000012", false);
  const auto latest = latest_complete_checkpoint(root_ / "auto");
  ASSERT_TRUE(latest.has_value());
  EXPECT_EQ(latest->filename(), "step-00000010");
}

}  // namespace
}  // namespace foldmoe::train
