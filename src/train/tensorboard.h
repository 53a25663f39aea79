// TensorBoard event files: the scalars of every metrics.jsonl row, written in TensorFlow's
// tfevents format so that TensorBoard (and anything that reads its files) shows a run without any
// converter (docs/observability.md §1).
//
// File: <run_dir>/tensorboard/events.out.tfevents.<unix time>.<host>.<pid>.foldmoe, one per
// invocation (TensorBoard reads every file of a directory in order). Records are TFRecord frames:
// uint64 length, masked CRC-32C of the length, the serialized Event protobuf, masked CRC-32C of it.
// The first event carries file_version "brain.Event:2"; a resumed run then writes a SessionLog
// START at its first step, which tells TensorBoard to drop the steps a preempted invocation wrote
// after the checkpoint it resumed from (metrics.jsonl is cut back the same way).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace foldmoe {

// The (tag, value) scalars of one metrics row: every number, booleans as 0/1, nested objects and
// arrays flattened with '/' ("comm_bytes/all_to_all", "peak_rss_mib/1",
// "tokens_per_expert/0/3"); strings and the "step" key itself are left out. A row with a string
// "type" (RL's "train" and "eval" rows) has its tags prefixed with it ("eval/accuracy").
std::vector<std::pair<std::string, double>> flatten_scalars(const nlohmann::ordered_json& record);

// The bytes of one event protobuf (exposed for tests).
std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& scalars);
// One TFRecord frame around `payload`.
std::string tfrecord_frame(const std::string& payload);

class TensorBoardWriter {
 public:
  // Creates <run_dir>/tensorboard/ and a new event file. `first_step` > 1 (a resumed run) writes the
  // SessionLog START of that step. UserError naming the path when it cannot be created.
  TensorBoardWriter(const std::string& run_dir, int64_t first_step);
  ~TensorBoardWriter();
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // The row's scalars at its "step" (rows without a step are skipped). Flushed to the file at once.
  void write(const nlohmann::ordered_json& record);
  const std::string& path() const { return path_; }

 private:
  void append(const std::string& event);
  std::string path_;
  int fd_ = -1;
};

}  // namespace foldmoe
