// Per-step training metrics: the human step line, the metrics.jsonl record, and a live progress
// bar that only draws on a terminal.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace foldmoe {

struct StepMetrics {
  int64_t step = 0;
  double lm_loss = 0;
  double aux_loss = 0;       // logged aux value, mean over MoE layers (docs/moe.md §4.9)
  double z_loss = 0;
  double grad_norm = 0;
  double lr = 0;
  double tokens_per_s = 0;
  double mfu = 0;            // fraction of peak (0.123 = 12.3%)
  double expert_imbalance = 0;  // max/mean routed tokens per expert, mean over MoE layers
  double dropped_fraction = 0;  // 1 - kept/routed over all MoE layers (0 when dropless)
  double step_time_s = 0;
  // [MoE layer][expert] routed tokens summed over the global batch; empty for a dense model.
  std::vector<std::vector<int64_t>> tokens_per_expert;
  // task -> [MoE layer][expert] routed tokens (optional; empty if not collected).
  std::map<std::string, std::vector<std::vector<int64_t>>> task_tokens_per_expert;
  // Per-layer logged aux values by load-balancing type (optional), e.g. "aux_loss" -> [layers].
  std::map<std::string, std::vector<double>> aux_loss_per_layer;
  // Communication of this rank in the step (world rank 0's view): bytes sent per collective kind
  // ("all_reduce", "all_to_all", ...) and seconds spent inside collectives. Empty on one process.
  std::map<std::string, int64_t> comm_bytes;
  double comm_seconds = 0;
  // Further named scalars (e.g. RL rewards); written to the jsonl, not to the step line.
  std::map<std::string, double> extra;
};

// max_e / mean_e of each layer's counts, averaged over layers with at least one token; 0 if none.
double expert_imbalance(const std::vector<std::vector<int64_t>>& tokens_per_expert);

// One human line, e.g.
// `step    12 | lm 2.3456 | aux 1.0012 | z 0.0000 | gnorm 1.23 | lr 3.00e-03 | 12345 tok/s | MFU 12.3% | imb 1.42`
// ("imb" only when tokens_per_expert is non-empty; "drop x%" appended when dropped_fraction > 0).
std::string format_step_line(const StepMetrics& m);

// The metrics.jsonl record of one step (keys in declaration order).
nlohmann::ordered_json step_metrics_json(const StepMetrics& m);

// Appends one JSON object per line to <run_dir>/metrics.jsonl, each line written whole by one
// write(2). A failed write (disk full, file too large, I/O error) is a UserError naming the file and
// the cause; the partial line is cut off again so the file stays one complete row per line.
class MetricsWriter {
 public:
  explicit MetricsWriter(const std::string& run_dir);  // creates run_dir; UserError if unwritable
  ~MetricsWriter();
  MetricsWriter(const MetricsWriter&) = delete;
  MetricsWriter& operator=(const MetricsWriter&) = delete;
  void write(const StepMetrics& m);
  void write(const nlohmann::ordered_json& record);
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// A single-line live bar `[=====>    ]  120/300  40.0%  ETA 1m12s`, redrawn with '\r'. Draws
// only when active: mode "on", or mode "auto" and `out` is a terminal; otherwise prints nothing
// (log_line then just prints the line).
class ProgressBar {
 public:
  ProgressBar(int64_t total_steps, const std::string& mode, std::FILE* out = stdout);
  ~ProgressBar();
  ProgressBar(const ProgressBar&) = delete;
  ProgressBar& operator=(const ProgressBar&) = delete;

  bool active() const { return active_; }
  void update(int64_t step);                // step = steps completed so far
  void log_line(const std::string& line);  // print a line above the bar
  void finish();                           // leave the bar's line (newline) and stop drawing

 private:
  void draw();
  void clear();

  int64_t total_;
  int64_t step_ = 0;
  bool active_;
  bool drawn_ = false;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
};

// The bar's text for `step` of `total` after `elapsed_s` seconds (exposed for tests).
std::string format_progress(int64_t step, int64_t total, double elapsed_s, int width = 30);

}  // namespace foldmoe
