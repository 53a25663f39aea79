// Asynchronous checkpoint writing (`[checkpoint] async = true`, docs/long-runs.md): world rank 0
// hands the gathered state to one background thread, which serialises, writes, fsyncs, checksums
// and renames it exactly as a synchronous save does, while the next steps run. The state is a
// snapshot the job owns (moved in, never shared with the model), so later steps cannot change what
// is written. At most one write is in flight; a failure is raised on the main thread at the next
// poll (after the next step) as a UserError naming the checkpoint and the cause.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/arena.h"
#include "train/checkpoint.h"

namespace foldmoe::train {

// Everything one checkpoint holds, in memory this object owns.
struct CheckpointSnapshot {
  int64_t step = 0;
  std::unique_ptr<ParamArena> dense, expert;  // logical (unsharded) arenas; expert may be null
  bool has_moments = false;
  std::vector<float> m_dense, v_dense, m_expert, v_expert;
  std::map<std::string, std::vector<float>> buffers;
  std::string config_toml;
  nlohmann::json extra = nlohmann::json::object();

  // A TrainState that borrows this snapshot's memory (for save_checkpoint).
  TrainState view();
  // A deep copy of `state` (parameters, moments, buffers): the result does not change when the
  // state's arenas and vectors change afterwards.
  static std::unique_ptr<CheckpointSnapshot> copy_of(const TrainState& state);
};

class AsyncCheckpointWriter {
 public:
  AsyncCheckpointWriter() = default;
  AsyncCheckpointWriter(const AsyncCheckpointWriter&) = delete;
  AsyncCheckpointWriter& operator=(const AsyncCheckpointWriter&) = delete;
  // Waits for a pending write (a run that ends, by any path, never leaves one half done by its
  // own choice); a failure found here can no longer be raised and is printed to stderr.
  ~AsyncCheckpointWriter();

  // Starts writing `snapshot` to `dir` (save_checkpoint with `options`) in the background. A
  // previous write is waited for first; its failure is raised here instead (the new snapshot is
  // then dropped).
  void submit(std::string dir, std::unique_ptr<CheckpointSnapshot> snapshot, SaveOptions options = {});
  // The directory of the write that completed since the last poll or wait, if any; never blocks.
  // A failed write raises UserError (rule C5) naming the directory and the cause.
  std::optional<std::string> poll();
  // Waits for the pending write; then as poll.
  std::optional<std::string> wait();
  bool pending() const { return pending_; }

 private:
  std::optional<std::string> collect();  // joins the finished job; raises its failure

  std::thread thread_;
  bool pending_ = false;
  std::string dir_;
  std::atomic<bool> done_{false};
  std::string error_;  // written by the job before done_ is set; empty = it succeeded
};

}  // namespace foldmoe::train
