// The training loop: global batch -> micro-batches -> forward/backward -> finalize -> AdamW,
// on the ranks of `groups`; run() drives it through the shared run loop.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "data/data_source.h"
#include "model/model.h"
#include "parallel/distributed_optimizer.h"
#include "train/async_checkpoint.h"
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

  // async: write in the background (world rank 0; null = synchronously).
  void save_checkpoint(const std::string& dir, train::AsyncCheckpointWriter* async = nullptr);
  void load_checkpoint(const std::string& dir);

  Model& model() { return *model_; }
  const ProcessGroups& groups() const { return groups_; }
  const Config& config() const { return cfg_; }
  int64_t step() const { return step_; }
  // The data of cfg.data (opened on first use: `foldmoe generate` never needs the data files).
  const data::DataSource& data();
  // Validation: [eval] iters batches of the held-out split, forward only over the whole layout;
  // collective. Token-mean loss over every valid target of those batches.
  struct Validation {
    double loss = 0;
    int64_t tokens = 0;
  };
  Validation validate();
  // The checkpoint manifest's "data" object: the data fingerprint and position after this step.
  nlohmann::json data_state();
  // Refuses (rule D24) to continue a checkpoint made on other data, naming both fingerprints, unless
  // [data] allow_different_data. Checkpoints from before fingerprints were recorded pass.
  void check_resumed_data();
  // The data fingerprint with the sequence length: what a resumed run must see again.
  std::string data_fingerprint();
  // Peak FLOP/s used for MFU (measured once, lazily).
  double peak_flops();

 private:
  Config cfg_;
  ProcessGroups groups_;
  std::unique_ptr<data::DataSource> data_;
  nlohmann::json resumed_data_;  // the "data" object of the checkpoint loaded (null: none / fresh)
  std::unique_ptr<Model> model_;
  // Returns the global grad norm; a non-finite one is skipped (no update) or stops the run (C1).
  double finalize_and_step(int64_t n_glob, double local_loss);
  // After a non-finite gradient norm: skip the update (true) or raise the C1 error.
  void check_parameters_finite();
  bool skipped_nonfinite(double norm, double local_loss);
  bool skip_nonfinite_step(double norm, double local_loss);

  std::unique_ptr<ArenaAdamW> opt_dense_, opt_expert_;      // without the distributed optimizer
  std::unique_ptr<ShardedAdamW> zero_dense_, zero_expert_;  // ZeRO-1 (parallel.distributed_optimizer)
  bool write_outputs_ = true;
  int64_t step_ = 0;
  double peak_flops_ = 0;
  train::NonfiniteBudget nonfinite_;
  bool last_step_skipped_ = false;
};

// Resolves derived config values that depend on the data: [model] vocab = 0 becomes the tokenizer's
// vocabulary size; a vocab below the tokenizer's size or not above the data's largest token id is
// refused (rule D21). The first form opens cfg.data (its files are checked here, before any run
// directory is written); the tokenizer form is for commands that read no data (generate, RL).
Config resolve_config(Config cfg);
Config resolve_config(Config cfg, const data::DataSource& data);
Config resolve_config_for_tokenizer(Config cfg, const data::Tokenizer& tokenizer);

}  // namespace foldmoe
