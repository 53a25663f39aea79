// The training loop: global batch -> micro-batches -> forward/backward -> finalize -> AdamW,
// on the ranks of `groups`; run() drives it through the shared run loop.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "data/synthetic.h"
#include "model/model.h"
#include "parallel/distributed_optimizer.h"
#include "train/metrics.h"
#include "train/nonfinite_guard.h"
#include "train/optimizer.h"
#include "train/run_directory.h"

namespace foldmoe {

class Trainer {
 public:
  // cfg must be validated. Resolves the vocabulary from the data, builds and initialises the model,
  // and loads cfg.checkpoint.load if set.
  // write_outputs = false: no run directory, metrics file, progress or checkpoints (benchmarks).
  explicit Trainer(Config cfg, ProcessGroups groups = ProcessGroups::single_process(), bool write_outputs = true);

  // Trains until cfg.train.steps in the run loop (train/run_loop.h): metrics into `dir`, step
  // lines, checkpoints, the closing summary. `dir` was checked before this trainer was built.
  void run(const RunDirectory& dir);
  // One optimizer step; returns its metrics.
  StepMetrics train_step();

  void save_checkpoint(const std::string& dir);
  void load_checkpoint(const std::string& dir);

  Model& model() { return *model_; }
  const Config& config() const { return cfg_; }
  int64_t step() const { return step_; }
  const data::SyntheticCorpus& corpus() const { return *corpus_; }
  // Peak FLOP/s used for MFU (measured once, lazily).
  double peak_flops();

 private:
  Config cfg_;
  ProcessGroups groups_;
  std::unique_ptr<data::SyntheticCorpus> corpus_;
  std::unique_ptr<Model> model_;
  // Returns the global grad norm; a non-finite one is skipped (no update) or stops the run (C1).
  double finalize_and_step(int64_t n_glob, double local_loss);
  // After a non-finite gradient norm: skip the update (true) or raise the C1 error.
  bool skip_nonfinite_step(double norm, double local_loss);

  std::unique_ptr<ArenaAdamW> opt_dense_, opt_expert_;      // without the distributed optimizer
  std::unique_ptr<ShardedAdamW> zero_dense_, zero_expert_;  // ZeRO-1 (parallel.distributed_optimizer)
  bool write_outputs_ = true;
  int64_t step_ = 0;
  double peak_flops_ = 0;
  train::NonfiniteBudget nonfinite_;
  bool last_step_skipped_ = false;
};

// Resolves derived config values that depend on the data (vocab size).
Config resolve_config(Config cfg);

}  // namespace foldmoe
