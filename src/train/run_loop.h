// The one run loop of `foldmoe train` and `foldmoe rl`: the run directory, the metrics file, the
// step lines and progress bar, the evaluation and checkpoint cadence, and the closing summary. The
// trainers supply what one step, one evaluation and one save are (RunHooks).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "config/config.h"
#include "core/arena.h"
#include "train/async_checkpoint.h"
#include "train/run_directory.h"

namespace foldmoe {

// What one step hands the loop.
struct StepOutcome {
  nlohmann::ordered_json record;  // its metrics.jsonl row (has "step")
  std::string line;               // its human step line (printed at the log cadence)
  double loss = 0;                // the loss the summary reports (final, best)
  int64_t tokens = 0;             // tokens the step processed (summary)
  bool skipped = false;           // a non-finite step skipped without an update (train.skip_nonfinite_steps)
};

// One evaluation's metrics.jsonl row and line.
struct EvalOutcome {
  nlohmann::ordered_json record;
  std::string line;
};

struct RunSchedule {
  std::string command;  // "train" | "rl"
  int64_t total_steps = 0;
  int64_t log_interval = 0;      // step lines every N steps and at the last step; 0: none
  int64_t checkpoint_every = 0;  // 0: no interval checkpoints
  bool save_final = true;
  int64_t eval_every = 0;        // 0: no periodic evaluation
  bool eval_before = false;      // evaluate at step 0 (fresh runs only)
  bool eval_at_end = false;      // evaluate after the last step
  std::string progress = "off";  // ProgressBar mode
  bool tensorboard = false;      // also write the rows to TensorBoard event files (lead only)
  int64_t profile_step = 0;      // Chrome trace of the N-th step this invocation runs (0 = none)
  // Long runs (docs/long-runs.md): stop signals, wall-clock budget (minutes, 0 = none), whether
  // this process takes part in saves (a stop then saves), and checkpoint retention.
  std::vector<std::string> exit_signals;
  double max_minutes = 0;
  bool writes_checkpoints = false;
  int keep_last = 0, keep_every = 0;
  // checkpoint.async: world rank 0 writes checkpoints in a background thread (src/train/async_checkpoint.h).
  bool async_checkpoint = false;
};

// The fields both trainers set the same way: command, steps, log interval, checkpoint cadence
// (none when this process writes no checkpoints) and the progress mode (under a multi-rank launch
// the launcher relays stdout, so "auto" means no live bar).
RunSchedule base_run_schedule(const Config& cfg, const std::string& command, int64_t total_steps,
                              int64_t checkpoint_every, bool writes_checkpoints, int world_size);

struct RunHooks {
  std::function<StepOutcome()> step;                     // runs the next step
  std::function<std::optional<EvalOutcome>()> evaluate;  // may be empty (no evaluation)
  // Collective: every rank calls it. `async` (non-null with checkpoint.async): world rank 0 submits
  // the gathered state to it instead of writing; the loop waits for it and prunes afterwards.
  std::function<void(const std::string& dir, train::AsyncCheckpointWriter* async)> save;
  // The world, for what the loop gathers from every rank (peak memory per rank, the profile's
  // events). Null: this process alone.
  Communicator* world = nullptr;
  // Collective: the maximum of `local` over every rank of the world (each rank calls it after each
  // step, so that all take the same decision to stop). Empty: a single process.
  std::function<double(double local)> world_max;
};

struct RunSummary {
  int64_t first_step = 0, last_step = 0;  // steps run by this invocation (first > last: none)
  int64_t tokens = 0;
  double seconds = 0;
  double final_loss = 0, best_loss = 0;
  int64_t best_step = 0;
  std::string checkpoint;  // the last checkpoint saved ("" = none)
  int64_t skipped_steps = 0;  // non-finite steps skipped
  std::string stopped_by;     // why the run stopped before its last step ("" = it did not)
};

// Every rank's value of `mine`, in rank order (one all-reduce; just {mine} without a world).
std::vector<double> values_of_every_rank(Communicator* world, double mine);
// Every rank's `mine` at world rank 0, in rank order (other ranks get an empty vector).
std::vector<std::string> gather_text_at_lead(Communicator* world, const std::string& mine);

// Runs steps completed+1 .. schedule.total_steps. Every rank calls it; `lead` (world rank 0) prints,
// prepares `dir` and writes metrics; every rank takes part in the saves. `start_line` is printed
// first, the summary (format_run_summary) last.
RunSummary run_loop(const RunDirectory& dir, const std::string& config_toml, int64_t completed,
                    const RunSchedule& schedule, const RunHooks& hooks, bool lead, const std::string& start_line);

// E.g. "foldmoe train: done, steps 1..300 in 12.3 s, 614400 tokens, final loss 1.2345, best loss 1.2001
// (step 297), checkpoint runs/x/checkpoints/step-00000300".
std::string format_run_summary(const std::string& command, const RunSummary& s);

// The run directory plan of a resolved config: `foldmoe <command>` with [train] run_dir, [checkpoint]
// dir/load/interval/save_final (`checkpoint_every` for rl: rl.checkpoint_every), and the size of
// one checkpoint (weights + AdamW moments of every logical parameter).
RunDirectory make_run_directory(const Config& cfg, const std::string& command, int64_t checkpoint_every, bool overwrite,
                                bool auto_resume = false);

// How checkpoint.load was resolved (docs/long-runs.md "Continuing").
enum class AutoLoad {
  None,      // an explicit checkpoint, or a fresh start into an unused checkpoint directory
  Asked,     // checkpoint.load = auto (or latest): the latest complete checkpoint, or a fresh start
  Implicit,  // checkpoint.load unset, no --overwrite, and the checkpoint directory already holds a
             // complete checkpoint: the run continues from it, as with auto
};
// Resolves `checkpoint.load = auto` (or `latest`) in place, and makes auto the default for a run
// whose checkpoint directory already holds a complete checkpoint (unless `overwrite`): load becomes
// the latest complete checkpoint, or "" (a fresh start) when there is none. Call on every rank
// before any rank writes (all then see the same directory).
AutoLoad resolve_auto_load(Config& cfg, bool overwrite);
// What a resolved `auto` chose, for the log: "foldmoe train: checkpoint.load = auto: continuing
// from <dir>", "...: no complete checkpoint in <root>, starting fresh", or for the implicit case
// "foldmoe train: continuing from <dir> (the latest complete checkpoint of <root>; ...)".
std::string auto_load_line(const Config& cfg, const std::string& command, AutoLoad how);

// Parameters (elements, not tensors) of the whole model, counted on one rank with no parallelism.
int64_t model_parameter_count(const Config& cfg);
// Parameters held in an arena on this rank (without alignment padding).
int64_t arena_parameter_count(const ParamArena& arena);
// "1.23M" / "45.6K" / "789".
std::string format_count(int64_t n);

}  // namespace foldmoe
