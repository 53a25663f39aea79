// The run directory's checks and file operations, and the shared run loop's cadence and summary,
// against hand-written expectations.
#include "train/run_directory.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "train/run_loop.h"

using namespace foldmoe;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("foldmoe_rundir_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

void write(const fs::path& p, const std::string& text) {
  std::ofstream(p) << text;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string user_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(RunDirectory, TruncateMetricsKeepsRowsUpToTheStepAndDropsATornRow) {
  TempDir t;
  const fs::path m = t.path / "metrics.jsonl";
  write(m,
        "{\"type\":\"eval\",\"step\":0}\n{\"step\":1}\n{\"step\":2}\n{\"type\":\"eval\",\"step\":2}\n{\"step\":3}\n"
        "{\"step\":4}\n{\"step\":5,\"lm");
  EXPECT_EQ(truncate_metrics(m, 2), 4);
  EXPECT_EQ(read(m), "{\"type\":\"eval\",\"step\":0}\n{\"step\":1}\n{\"step\":2}\n{\"type\":\"eval\",\"step\":2}\n");
  write(m, "{\"step\":1}\n{\"step\":2}\n{\"step\":3,\"lm");
  EXPECT_EQ(truncate_metrics(m, 9), 2);
  EXPECT_EQ(read(m), "{\"step\":1}\n{\"step\":2}\n");
  EXPECT_EQ(truncate_metrics(t.path / "absent.jsonl", 3), 0);
  EXPECT_FALSE(fs::exists(t.path / "absent.jsonl"));
}

TEST(RunDirectory, AnEarlierRunIsMetricsWithRowsOrAStepCheckpoint) {
  TempDir t;
  const fs::path ck = t.path / "checkpoints";
  EXPECT_FALSE(holds_earlier_run(t.path, ck));
  write(t.path / "metrics.jsonl", "");
  fs::create_directories(ck / "step-12a");  // not a step-<digits> name
  write(t.path / "config.toml", "[train]\n");
  EXPECT_FALSE(holds_earlier_run(t.path, ck));
  fs::create_directories(ck / "step-00000004");
  EXPECT_TRUE(holds_earlier_run(t.path, ck));
  fs::remove_all(ck);
  write(t.path / "metrics.jsonl", "{\"step\":1}\n");
  EXPECT_TRUE(holds_earlier_run(t.path, ck));
}

TEST(RunDirectory, CheckpointOfARoot) {
  TempDir t;
  fs::create_directories(t.path / "run" / "checkpoints" / "step-00000003");
  fs::create_directory_symlink(t.path / "run", t.path / "link");
  const fs::path root = t.path / "run" / "checkpoints";
  EXPECT_TRUE(is_checkpoint_of(root / "step-00000003", root));
  EXPECT_TRUE(is_checkpoint_of(t.path / "link" / "checkpoints" / "step-00000003/", root));
  EXPECT_TRUE(is_checkpoint_of(t.path / "run" / ".." / "run" / "checkpoints" / "step-00000003", root / ""));
  EXPECT_FALSE(is_checkpoint_of(t.path / "run" / "step-00000003", root));
  EXPECT_FALSE(is_checkpoint_of(root / "step-00000003" / "deeper", root));
}

TEST(RunDirectory, OutputPathsMustBeWritableDirectories) {
  TempDir t;
  write(t.path / "file", "x");
  EXPECT_EQ(user_error_of([&] { check_output_directory(t.path / "new" / "deeper", "train.run_dir"); }), "");
  EXPECT_EQ(user_error_of([&] { check_output_directory(t.path, "train.run_dir"); }), "");
  const std::string a = user_error_of([&] { check_output_directory(t.path / "file", "train.run_dir"); });
  EXPECT_NE(a.find("train.run_dir = " + (t.path / "file").string() + " is a file"), std::string::npos) << a;
  const std::string b = user_error_of([&] { check_output_directory(t.path / "file" / "sub", "checkpoint.dir"); });
  EXPECT_NE(b.find("checkpoint.dir"), std::string::npos) << b;
  EXPECT_NE(b.find("cannot be created"), std::string::npos) << b;
  EXPECT_NE(b.find("fix:"), std::string::npos) << b;
  EXPECT_FALSE(fs::exists(t.path / "new"));  // checks create nothing
}

TEST(RunDirectory, FreeSpaceForOneCheckpoint) {
  TempDir t;
  EXPECT_EQ(user_error_of([&] { check_free_space(t.path / "ck", 1e3, "checkpoint.dir"); }), "");
  // 1 EB exceeds any disk this test runs on.
  const std::string e = user_error_of([&] { check_free_space(t.path / "ck", 1e18, "checkpoint.dir"); });
  EXPECT_NE(e.find("one checkpoint needs about 1000.0 PB"), std::string::npos) << e;
  EXPECT_NE(e.find((t.path / "ck").string()), std::string::npos) << e;
}

TEST(RunDirectory, AtomicWriteReplacesAndReportsTheCause) {
  TempDir t;
  write_file_atomically(t.path / "config.toml", "a = 1\n");
  write_file_atomically(t.path / "config.toml", "a = 2\n");
  EXPECT_EQ(read(t.path / "config.toml"), "a = 2\n");
  const std::string e = user_error_of([&] { write_file_atomically(t.path / "missing" / "config.toml", "x"); });
  EXPECT_NE(e.find((t.path / "missing" / "config.toml").string()), std::string::npos) << e;
  EXPECT_NE(e.find("No such file or directory"), std::string::npos) << e;
}

TEST(RunDirectory, FreshRunIntoAUsedDirectoryIsRefusedUnlessResumedOrOverwritten) {
  TempDir t;
  fs::create_directories(t.path / "checkpoints" / "step-00000002");
  write(t.path / "metrics.jsonl", "{\"step\":1}\n{\"step\":2}\n{\"step\":3}\n");
  RunDirectoryPlan p;
  p.command = "train";
  p.run_dir = t.path;
  p.checkpoint_root = t.path / "checkpoints";
  const std::string e = user_error_of([&] { RunDirectory d(p); });
  EXPECT_NE(e.find("--checkpoint.load=" + (t.path / "checkpoints").string()), std::string::npos) << e;
  EXPECT_NE(e.find("--overwrite"), std::string::npos) << e;
  // Another run's checkpoint would cut this run's metrics: refused, unless --overwrite.
  fs::create_directories(t.path / "other" / "step-00000002");
  p.resume_from = t.path / "other" / "step-00000002";
  const std::string other = user_error_of([&] { RunDirectory d(p); });
  EXPECT_NE(other.find("is not one of its checkpoints"), std::string::npos) << other;
  EXPECT_NE(other.find("--overwrite"), std::string::npos) << other;
  p.resume_from = t.path / "checkpoints" / "." / "step-00000002/";
  RunDirectory resumed(p);
  EXPECT_TRUE(resumed.continues_earlier_run());
  resumed.prepare("[train]\n", 2);
  EXPECT_EQ(read(t.path / "metrics.jsonl"), "{\"step\":1}\n{\"step\":2}\n");
  EXPECT_EQ(read(t.path / "config.toml"), "[train]\n");
  EXPECT_TRUE(fs::exists(t.path / "checkpoints" / "step-00000002"));
  p.resume_from.clear();
  p.overwrite = true;
  write(t.path / "checkpoints" / "keep.txt", "mine");
  RunDirectory(p).prepare("[train]\n", 0);
  EXPECT_FALSE(fs::exists(t.path / "metrics.jsonl"));
  EXPECT_FALSE(fs::exists(t.path / "checkpoints" / "step-00000002"));
  EXPECT_TRUE(fs::exists(t.path / "checkpoints" / "keep.txt"));
}

TEST(RunLoop, CadenceOfStepsEvaluationsAndSavesAndTheSummary) {
  TempDir t;
  RunDirectoryPlan p;
  p.command = "rl";
  p.run_dir = t.path / "run";
  p.checkpoint_root = t.path / "run" / "checkpoints";
  const RunDirectory dir(p);
  RunSchedule s;
  s.command = "rl";
  s.total_steps = 5;
  s.checkpoint_every = 2;
  s.eval_every = 3;
  s.eval_before = true;
  s.eval_at_end = true;
  const std::vector<double> losses = {3.0, 1.5, 2.0, 1.0, 1.25};
  int64_t k = 0;
  std::vector<std::string> events;
  RunHooks h;
  h.step = [&] {
    ++k;
    events.push_back("step " + std::to_string(k));
    StepOutcome o;
    o.record = {{"type", "train"}, {"step", k}};
    o.loss = losses[size_t(k - 1)];
    o.tokens = 10;
    return o;
  };
  h.evaluate = [&]() -> std::optional<EvalOutcome> {
    events.push_back("eval " + std::to_string(k));
    return EvalOutcome{{{"type", "eval"}, {"step", k}}, "eval"};
  };
  h.save = [&](const std::string& path, train::AsyncCheckpointWriter*) {
    events.push_back("save " + fs::path(path).filename().string());
  };
  const RunSummary r = run_loop(dir, "[rl]\n", 0, s, h, /*lead=*/true, "start");
  const std::vector<std::string> want = {"eval 0",
                                         "step 1",
                                         "step 2",
                                         "save step-00000002",
                                         "step 3",
                                         "eval 3",
                                         "step 4",
                                         "save step-00000004",
                                         "step 5",
                                         "eval 5",
                                         "save step-00000005"};
  EXPECT_EQ(events, want);
  // Step rows also carry the loop's time breakdown and every rank's peak memory
  // (docs/observability.md §2-3); the rest of each row is the trainer's, in order.
  std::string rows;
  std::istringstream lines(read(p.run_dir / "metrics.jsonl"));
  for (std::string line; std::getline(lines, line);) {
    nlohmann::ordered_json row = nlohmann::ordered_json::parse(line);
    if (row["type"] == "train") {
      EXPECT_EQ(row["peak_rss_mib"].size(), 1u) << line;
      EXPECT_GT(row["peak_rss_mib"][0].get<double>(), 1.0) << line;
      for (const char* phase : {"data", "forward", "backward", "optimizer", "eval", "checkpoint", "other"})
        EXPECT_GE(row["time_s"].at(phase).get<double>(), 0.0) << line;
      row.erase("peak_rss_mib");
      row.erase("time_s");
    }
    rows += row.dump() + "\n";
  }
  EXPECT_EQ(rows,
            "{\"type\":\"eval\",\"step\":0}\n{\"type\":\"train\",\"step\":1}\n{\"type\":\"train\",\"step\":2}\n"
            "{\"type\":\"train\",\"step\":3}\n{\"type\":\"eval\",\"step\":3}\n{\"type\":\"train\",\"step\":4}\n"
            "{\"type\":\"train\",\"step\":5}\n{\"type\":\"eval\",\"step\":5}\n");
  EXPECT_EQ(read(p.run_dir / "config.toml"), "[rl]\n");
  EXPECT_EQ(r.first_step, 1);
  EXPECT_EQ(r.last_step, 5);
  EXPECT_EQ(r.tokens, 50);
  EXPECT_EQ(r.final_loss, 1.25);
  EXPECT_EQ(r.best_loss, 1.0);
  EXPECT_EQ(r.best_step, 4);
  EXPECT_EQ(r.checkpoint, (p.checkpoint_root / "step-00000005").string());
  RunSummary copy = r;
  copy.seconds = 2.04;
  EXPECT_EQ(format_run_summary("rl", copy),
            "foldmoe rl: done, steps 1..5 in 2.0 s, 50 tokens, final loss 1.2500, best loss 1.0000 (step 4), "
            "checkpoint " +
                r.checkpoint);
}

TEST(RunLoop, FormatCount) {
  EXPECT_EQ(format_count(999), "999");
  EXPECT_EQ(format_count(12345), "12.3K");
  EXPECT_EQ(format_count(1234567), "1.23M");
  EXPECT_EQ(format_count(2500000000), "2.50B");
}

// Only another rank was signalled: this rank's world_max hook reports it after step 3; the loop
// saves at step 3 (once, though the interval save fell on the same step) and stops.
TEST(RunLoop, StopsTogetherWhenAnyRankWasSignalled) {
  TempDir t;
  RunDirectoryPlan p;
  p.command = "train";
  p.run_dir = t.path / "run";
  p.checkpoint_root = t.path / "run" / "checkpoints";
  const RunDirectory dir(p);
  RunSchedule s;
  s.command = "train";
  s.total_steps = 10;
  s.checkpoint_every = 3;
  s.writes_checkpoints = true;
  int64_t k = 0;
  std::vector<std::string> events;
  RunHooks h;
  h.step = [&] {
    ++k;
    events.push_back("step " + std::to_string(k));
    StepOutcome o;
    o.record = {{"step", k}};
    o.loss = 1.0;
    return o;
  };
  h.save = [&](const std::string& path, train::AsyncCheckpointWriter*) {
    events.push_back("save " + fs::path(path).filename().string());
  };
  h.world_max = [&](double local) {
    EXPECT_EQ(local, 0.0);  // nothing happened on this rank
    return k == 3 ? double(SIGUSR1) : 0.0;
  };
  const RunSummary r = run_loop(dir, "", 0, s, h, /*lead=*/true, "start");
  EXPECT_EQ(events, (std::vector<std::string>{"step 1", "step 2", "step 3", "save step-00000003"}));
  EXPECT_EQ(r.last_step, 3);
  EXPECT_EQ(r.stopped_by, "signal SIGUSR1");
  EXPECT_NE(format_run_summary("train", r).find("foldmoe train: stopped after signal SIGUSR1, steps 1..3"),
            std::string::npos);
}

// A skipped (non-finite) step is counted and kept out of the losses; a non-finite loss that was not
// skipped stops the run with C1 before any save.
TEST(RunLoop, SkippedStepsAreCountedAndANonFiniteLossStops) {
  TempDir t;
  RunDirectoryPlan p;
  p.command = "train";
  p.run_dir = t.path / "run";
  p.checkpoint_root = t.path / "run" / "checkpoints";
  const RunDirectory dir(p);
  RunSchedule s;
  s.command = "train";
  s.total_steps = 4;
  s.save_final = true;
  s.writes_checkpoints = true;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> losses = {2.0, nan, 1.5, 1.0};
  std::vector<bool> skipped = {false, true, false, false};
  int64_t k = 0;
  int saves = 0;
  RunHooks h;
  h.step = [&] {
    StepOutcome o;
    o.record = {{"step", ++k}};
    o.loss = losses[size_t(k - 1)];
    o.skipped = skipped[size_t(k - 1)];
    return o;
  };
  h.save = [&](const std::string&, train::AsyncCheckpointWriter*) { ++saves; };
  RunSummary r = run_loop(dir, "", 0, s, h, true, "start");
  EXPECT_EQ(r.skipped_steps, 1);
  EXPECT_EQ(r.best_loss, 1.0);
  EXPECT_NE(format_run_summary("train", r).find("1 non-finite step(s) skipped"), std::string::npos);
  EXPECT_EQ(saves, 1);
  // The same with the NaN step not skipped: C1, and no save.
  TempDir t2;
  p.run_dir = t2.path / "run";
  p.checkpoint_root = t2.path / "run" / "checkpoints";
  const RunDirectory dir2(p);
  k = 0;
  saves = 0;
  skipped = {false, false, false, false};
  const std::string e = user_error_of([&] { run_loop(dir2, "", 0, s, h, true, "start"); });
  EXPECT_NE(e.find("training error C1: step 2 has a non-finite loss (nan)"), std::string::npos) << e;
  EXPECT_EQ(saves, 0);
}

// checkpoint.load = auto with no complete checkpoint: an attempt that never saved is started over.
TEST(RunDirectory, AutoWithoutACheckpointStartsOver) {
  TempDir t;
  fs::create_directories(t.path / "checkpoints" / "step-00000004.tmp-123");
  write(t.path / "metrics.jsonl", "{\"step\":1}\n");
  RunDirectoryPlan p;
  p.command = "train";
  p.run_dir = t.path;
  p.checkpoint_root = t.path / "checkpoints";
  EXPECT_NE(user_error_of([&] { RunDirectory d(p); }).find("--checkpoint.load=auto"), std::string::npos);
  p.auto_fresh = true;
  RunDirectory(p).prepare("[train]\n", 0);
  EXPECT_FALSE(fs::exists(t.path / "metrics.jsonl"));
}
