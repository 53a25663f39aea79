// The files a run owns (docs/run-directory.md): <run_dir>/config.toml, <run_dir>/metrics.jsonl and
// the checkpoints under checkpoint.dir (default <run_dir>/checkpoints/step-NNNNNNNN).
//
// A run never loses what a user already has. The constructor checks everything that can be known
// before any work, touching no file: both paths are directories or can be created as one, they are
// writable, a run directory holding an earlier run is continued only by resuming from one of its own
// checkpoints (checkpoint.load) or replaced only with --overwrite, and the checkpoint's file system
// has room for one checkpoint.
// prepare() then makes the directories and writes config.toml; on resume it cuts metrics.jsonl
// back to the resumed step so the file reads as one run.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace foldmoe {

struct RunDirectoryPlan {
  std::string command;                    // "train" or "rl" (for messages)
  std::filesystem::path run_dir;          // [train] run_dir
  std::filesystem::path checkpoint_root;  // [checkpoint] dir, or <run_dir>/checkpoints
  std::filesystem::path resume_from;      // checkpoint.load ("" = a fresh run)
  bool overwrite = false;                 // --overwrite: replace an earlier run's metrics and checkpoints
  // checkpoint.load = auto found no complete checkpoint: an earlier attempt that stopped before its
  // first save (only metrics rows, or an interrupted save) is started over instead of refused.
  bool auto_fresh = false;
  bool writes_checkpoints = true;         // interval saves or save_final
  double checkpoint_bytes = 0;            // estimated size of one checkpoint (0 = unknown)
};

class RunDirectory {
 public:
  // Read-only checks of the plan; UserError (exit 2) naming the path, the rule and the fix.
  explicit RunDirectory(RunDirectoryPlan plan);

  // Creates the directories and writes config.toml (replaced atomically). A resumed run keeps the
  // metrics rows up to `resumed_step`; an overwritten run starts without the earlier metrics and
  // checkpoints. Call on the one rank that writes, after every other validation passed.
  void prepare(const std::string& config_toml, int64_t resumed_step) const;

  const RunDirectoryPlan& plan() const { return plan_; }
  // The run continues the run already in run_dir (resumed from one of its checkpoints).
  bool continues_earlier_run() const { return continues_; }
  std::filesystem::path metrics_path() const { return plan_.run_dir / "metrics.jsonl"; }
  std::filesystem::path checkpoint_path(int64_t step) const;

 private:
  RunDirectoryPlan plan_;
  bool continues_ = false;
};

// The checks and file operations RunDirectory is made of (unit-tested one by one).

// `dir` is a directory that this process can write into, or can be created as one. `key` names
// the setting in the message (e.g. "train.run_dir").
void check_output_directory(const std::filesystem::path& dir, const std::string& key);
// The file system that will hold `dir` has at least `bytes` available (skipped when unknowable).
void check_free_space(const std::filesystem::path& dir, double bytes, const std::string& what);
// Whether `run_dir` (metrics.jsonl with rows) or `checkpoint_root` (a step-* entry) holds a run.
bool holds_earlier_run(const std::filesystem::path& run_dir, const std::filesystem::path& checkpoint_root);
// Whether checkpoint directory `checkpoint` is an entry of `checkpoint_root` (paths compared after
// resolving symbolic links, "." and "..").
bool is_checkpoint_of(const std::filesystem::path& checkpoint, const std::filesystem::path& checkpoint_root);
// Rewrites a metrics.jsonl keeping the rows whose "step" is <= last_step, up to the first row that
// is not a complete JSON object (a torn last line). Returns the rows kept; no file = 0.
int64_t truncate_metrics(const std::filesystem::path& metrics, int64_t last_step);
// Writes `text` to `path` through a temporary file and a rename, so a failure leaves the old file.
// UserError with the path and the cause (e.g. "No space left on device").
void write_file_atomically(const std::filesystem::path& path, const std::string& text);

}  // namespace foldmoe
