// The pieces of long runs (docs/long-runs.md): stop signals, checkpoint retention, removal of what
// interrupted saves leave, and the non-finite step budget.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>

#include "train/checkpoint_retention.h"
#include "train/nonfinite_guard.h"
#include "train/stop_signals.h"

using namespace foldmoe;
using namespace foldmoe::train;
namespace fs = std::filesystem;

TEST(StopSignals, NamesAndNumbers) {
  EXPECT_EQ(signal_number("SIGTERM"), SIGTERM);
  EXPECT_EQ(signal_number("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(signal_number("SIGKILL"), -1);  // cannot be caught: not offered
  EXPECT_EQ(signal_name(SIGINT), "SIGINT");
  EXPECT_EQ(signal_name(SIGHUP), "SIGHUP");
}

// In a child process (the handlers are process-wide): the first signal is only recorded, the
// second ends the process at once with 128 + its number.
TEST(StopSignals, FirstIsRecordedSecondExitsAtOnce) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    install_stop_signals({"SIGUSR1", "SIGTERM"});
    if (received_stop_signal() != 0) ::_exit(10);
    ::raise(SIGUSR1);
    if (received_stop_signal() != SIGUSR1) ::_exit(11);
    ::raise(SIGTERM);
    ::_exit(12);  // not reached: the second signal exits
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 128 + SIGTERM);
}

// A signal that is not configured keeps its default action (here: SIGUSR2 terminates).
TEST(StopSignals, UnlistedSignalKeepsDefault) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGUSR2, SIG_DFL);
    install_stop_signals({"SIGUSR1"});
    ::raise(SIGUSR2);
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGUSR2);
}

TEST(Retention, KeepLastCountsTheOneJustSaved) {
  EXPECT_EQ(checkpoints_to_prune({10, 20, 30, 40}, 40, 2, 0), (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(checkpoints_to_prune({10, 20, 30, 40}, 40, 1, 0), (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(checkpoints_to_prune({10, 20, 30, 40}, 40, 4, 0), (std::vector<int64_t>{}));
  EXPECT_EQ(checkpoints_to_prune({10, 20, 30, 40}, 40, 0, 0), (std::vector<int64_t>{}));  // 0 = keep all
}

TEST(Retention, KeepEveryKeepsMultiplesForever) {
  EXPECT_EQ(checkpoints_to_prune({5, 10, 15, 20, 25, 30}, 30, 1, 10), (std::vector<int64_t>{5, 15, 25}));
}

// A run resumed from step 20 of a directory that also holds step 50 (an earlier attempt got
// further): after saving step 30, only steps before 30 are candidates; 20 goes only because 30 is
// now complete.
TEST(Retention, OnlyOlderThanTheNewCheckpointAreCandidates) {
  EXPECT_EQ(checkpoints_to_prune({10, 20, 30, 50}, 30, 1, 0), (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(checkpoints_to_prune({20, 50}, 20, 1, 0), (std::vector<int64_t>{}));
}

class RetentionDir : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("foldmoe_retention_" + std::to_string(::getpid()) + "_" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }
  void make(const std::string& name, bool complete) {
    fs::create_directories(root_ / name);
    std::ofstream(root_ / name / "manifest.json") << "{}";
    if (complete) std::ofstream(root_ / name / "COMPLETE") << "x";
  }
  fs::path root_;
};

TEST_F(RetentionDir, PrunesCompleteCheckpointsOnly) {
  make("step-00000001", true);
  make("step-00000002", false);  // incomplete: not understood, never deleted
  make("step-00000003", true);
  make("step-00000004", true);
  std::ofstream(root_ / "notes.txt") << "mine";
  const auto removed = prune_checkpoints(root_, 4, 2, 0);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], root_ / "step-00000001");
  EXPECT_FALSE(fs::exists(root_ / "step-00000001"));
  EXPECT_TRUE(fs::exists(root_ / "step-00000002"));
  EXPECT_TRUE(fs::exists(root_ / "step-00000003"));
  EXPECT_TRUE(fs::exists(root_ / "step-00000004"));
  EXPECT_TRUE(fs::exists(root_ / "notes.txt"));
}

TEST_F(RetentionDir, StaleSaveLeftoversAreRemoved) {
  EXPECT_TRUE(is_stale_save_leftover("step-00000020.tmp-4242"));
  EXPECT_TRUE(is_stale_save_leftover("step-00000020.old-7"));
  EXPECT_FALSE(is_stale_save_leftover("step-00000020"));
  EXPECT_FALSE(is_stale_save_leftover("step-00000020.tmp-"));
  EXPECT_FALSE(is_stale_save_leftover("step-00000020.tmp-12x"));
  EXPECT_FALSE(is_stale_save_leftover("mydata.tmp-12"));
  make("step-00000020.tmp-4242", false);
  make("step-00000010.old-99", true);
  make("step-00000010", true);
  make("backup.tmp-1", false);
  const auto removed = remove_stale_save_leftovers(root_);
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_FALSE(fs::exists(root_ / "step-00000020.tmp-4242"));
  EXPECT_FALSE(fs::exists(root_ / "step-00000010.old-99"));
  EXPECT_TRUE(fs::exists(root_ / "step-00000010"));
  EXPECT_TRUE(fs::exists(root_ / "backup.tmp-1"));
}

TEST(NonfiniteGuard, FindsTheFirstBadElement) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const float a[] = {1, 2, 3};
  const float b[] = {1, -inf, nan};
  EXPECT_EQ(first_nonfinite(a, 3), -1);
  EXPECT_EQ(first_nonfinite(b, 3), 1);
  EXPECT_EQ(first_nonfinite(b + 2, 1), 0);
}

TEST(NonfiniteGuard, BudgetCountsStepsInARow) {
  NonfiniteBudget none(0);
  EXPECT_FALSE(none.allow_skip());
  NonfiniteBudget two(2);
  EXPECT_TRUE(two.allow_skip());
  EXPECT_TRUE(two.allow_skip());
  two.finite_step();  // a finite step resets the run of skips
  EXPECT_TRUE(two.allow_skip());
  EXPECT_TRUE(two.allow_skip());
  EXPECT_FALSE(two.allow_skip());
  EXPECT_EQ(two.skipped(), 4);
}

TEST(NonfiniteGuard, NamesTheParameterWithTheBadGradient) {
  ParamArena arena(ArenaKind::Dense);
  ParamSpec a, b;
  a.name = "a";
  a.shape = {3};
  b.name = "b";
  b.shape = {2, 2};
  arena.add(a);
  arena.add(b);
  arena.allocate();
  EXPECT_EQ(first_nonfinite_gradient(arena), "");
  arena.grads()[arena.offset(1) + 2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(first_nonfinite_gradient(arena), "b");
}

TEST(NonfiniteGuard, NamesTheParameterWithABadWeight) {
  ParamArena arena(ArenaKind::Dense);
  ParamSpec a, b;
  a.name = "a";
  a.shape = {3};
  b.name = "b";
  b.shape = {2, 2};
  arena.add(a);
  arena.add(b);
  arena.allocate();
  EXPECT_EQ(first_nonfinite_parameter(arena), "");
  arena.grads()[arena.offset(0)] = std::numeric_limits<float>::infinity();  // gradients are not weights
  EXPECT_EQ(first_nonfinite_parameter(arena), "");
  arena.params()[arena.offset(1) + 3] = -std::numeric_limits<float>::infinity();
  EXPECT_EQ(first_nonfinite_parameter(arena), "b");
  arena.params()[arena.offset(0) + 1] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(first_nonfinite_parameter(arena), "a");
}
