// Typed configuration: the one source of truth. TOML keys (`[section] key = value`) and
// command-line flags (`--section.key=value`) are derived from the field table in
// config_fields.cpp; nothing else parses configuration.
//
// The member defaults ARE the documented defaults: the built-in tiny MoE that `foldmoe train`
// trains without --config (2 layers, hidden 96, 8 experts top-2 on the synthetic corpus). A TOML
// file or a flag changes only the keys it names; `foldmoe config` prints the result.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/rl_section.h"

namespace foldmoe {

struct ModelConfig {
  int layers = 2;
  int hidden = 96;
  int heads = 4;
  int kv_heads = 2;  // G query groups; heads mod kv_heads == 0
  int head_dim = 0;  // 0 = hidden / heads
  int ffn = 192;     // dense SwiGLU width F
  int vocab = 0;     // 0 = the data's vocabulary size
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;  // output projections use init_std / sqrt(2 * layers)
  // Longest sequence the model runs on: train.seq_len, and prompt + new tokens in generate and RL.
  int max_seq_len = 65536;
  // Hugging Face architecture features (docs/model.md "Architecture options").
  std::string qk_norm = "none";       // none | head (RMSNorm per head, Qwen3) | full (over all heads, OLMoE)
  bool attention_bias = false;        // biases on the q, k and v projections (Qwen2)
  bool tie_embeddings = false;        // the LM head is the embedding matrix
  std::string rope_scaling = "none";  // none | linear | llama3 | yarn (transformers' rope_scaling types)
  double rope_scaling_factor = 1.0;
  int rope_original_max_position = 0;           // 0 = unset; required by llama3 and yarn
  double rope_low_freq_factor = 1.0;            // llama3
  double rope_high_freq_factor = 4.0;           // llama3
  double rope_beta_fast = 32.0;                 // yarn
  double rope_beta_slow = 1.0;                  // yarn
  std::optional<double> rope_attention_factor;  // yarn; none = 0.1·ln(factor) + 1 (transformers' default)

  bool operator==(const ModelConfig&) const = default;
};

struct MoEConfig {
  int num_experts = 8;  // 0 = dense model (no MoE layers)
  int topk = 2;
  int ffn_hidden_size = 96;                // 0 = model.ffn
  std::vector<int> layer_freq = {1};       // one entry f: layer i is MoE iff i mod f == 0; or L entries of 0/1
  std::string score_function = "softmax";  // softmax | sigmoid
  bool pre_softmax = false;
  std::optional<double> topk_scaling_factor;
  std::optional<int> num_groups;
  std::optional<int> group_topk;
  bool router_bias = false;
  bool enable_expert_bias = false;
  double bias_update_rate = 1e-3;
  std::optional<double> input_jitter_eps;
  std::vector<std::string> load_balancing_type = {"aux_loss"};  // aux_loss seq_aux_loss global_aux_loss none
  std::vector<double> aux_loss_coeff = {0.01};
  std::optional<double> z_loss_coeff = 0.001;
  std::optional<double> capacity_factor;  // absent or negative = dropless; 0 is refused (M13)
  std::string drop_policy = "probs";      // probs | position
  bool pad_to_capacity = false;
  std::vector<int> capacity_partition;  // test option [tp, cp]: capacity units of a TP x CP run
  std::string dispatcher = "alltoall";  // alltoall | allgather
  int shared_expert_ffn_hidden_size = 0;
  bool shared_expert_gate = false;

  bool operator==(const MoEConfig&) const = default;
};

struct ParallelConfig {
  int tp = 1, cp = 1, pp = 1, vpp = 1, ep = 1;
  int etp = 0;  // 0 = tp
  std::string order = "tp-cp-ep-dp-pp";
  std::string cp_comm_type = "p2p";  // p2p (ring) | all_gather
  bool sequence_parallel = true;     // SP with TP > 1; required when the model has MoE layers (L7)
  bool distributed_optimizer = false;
  int64_t bucket_size = 40000000;  // elements per gradient-reduction bucket
  // Explicit pipeline split: layers per virtual stage s = c·pp + r (pp·vpp entries); empty = even.
  std::vector<int> pipeline_layers;
  // Watchdog: a collective or point-to-point wait longer than this aborts the job, naming the rank,
  // group and operation (0 = off).
  double timeout_s = 600;

  bool operator==(const ParallelConfig&) const = default;
};

struct TrainConfig {
  int steps = 300;
  int micro_batch = 16;   // B sequences per micro-batch
  int micro_batches = 1;  // M micro-batches per step (gradient accumulation) when global_batch = 0
  int global_batch = 0;   // sequences per step; > 0: M = global_batch / (micro_batch · DP) (rule L13)
  int seq_len = 64;       // S
  int64_t seed = 1234;
  bool per_token_loss = false;
  std::string run_dir = "runs/tiny-moe";
  // Activation recomputation: none | moe (MoE blocks re-run in backward) | full (whole pipeline
  // chunks re-run from their input). Losses and gradients are identical in every mode.
  std::string recompute = "none";
  // Mixed precision (docs/precision.md): "bf16" rounds both operands of every matrix product to
  // bf16 (fp32 accumulation); master weights, gradients, optimizer state, norms, softmax, router
  // and cross-entropy stay fp32. Checkpoints hold fp32 either way.
  std::string precision = "fp32";
  // Long runs (docs/long-runs.md). Signals that make every rank finish its step, save a checkpoint
  // and exit 0 (a second one exits at once): any of SIGTERM SIGINT SIGUSR1 SIGUSR2 SIGHUP.
  std::vector<std::string> exit_signals = {"SIGTERM", "SIGINT", "SIGUSR1"};
  double max_minutes = 0;        // wall-clock budget: save and stop once it is used up (0 = none)
  int skip_nonfinite_steps = 0;  // non-finite steps in a row that are skipped; one more stops the run
  // Skip the check of the memory estimate against this node's available memory (rule R2).
  bool skip_memory_check = false;

  bool operator==(const TrainConfig&) const = default;
};

struct OptimConfig {
  double lr = 3e-3;
  double min_lr = 3e-4;
  int warmup_steps = 20;
  std::string schedule = "cosine";  // cosine | constant
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  // 0 = off

  bool operator==(const OptimConfig&) const = default;
};

struct DataConfig {
  std::string source = "synthetic";  // synthetic | indexed
  std::vector<std::string> tasks = {"add", "reverse", "sort", "lookup"};
  int eval_samples = 200;  // per task for `foldmoe eval`
  // source = "indexed": Megatron .bin/.idx prefixes, optional blend weights (one per path), the
  // train,valid,test split of every dataset's documents, and the tokenizer the data was made with.
  std::vector<std::string> paths;
  std::vector<double> weights;  // empty = proportional to each dataset's size
  std::string split = "969,30,1";
  std::string tokenizer = "char";  // char | a tokenizer.json (or its directory) | a SentencePiece .model
  bool eod_mask_loss = false;      // targets equal to the tokenizer's end-of-document id get no loss
  std::string cache_dir;           // sample-index cache ("" = <run_dir>/data-cache)
  bool allow_different_data = false;  // resume a checkpoint made on other data (normally refused: D24)

  bool operator==(const DataConfig&) const = default;
};

struct CheckpointConfig {
  std::string dir;   // "" = <run_dir>/checkpoints
  int interval = 0;  // save every N steps (0 = only at the end)
  std::string load;  // resume from this checkpoint directory; "auto"/"latest": the run's latest, if any
  bool save_final = true;
  int keep_last = 0;   // keep the N newest complete checkpoints, delete older ones (0 = keep all)
  int keep_every = 0;  // with keep_last: also keep forever those whose step is a multiple of K (0 = none)
  bool async = false;  // write checkpoints in a background thread while training continues

  bool operator==(const CheckpointConfig&) const = default;
};

// Validation on the data source's held-out split during `foldmoe train`.
struct EvalConfig {
  int interval = 0;    // validate every N steps (0 = never)
  int iters = 1;       // batches of [train] global batch size per validation (the same batches every time)
  bool at_end = true;  // with interval > 0: also validate after the last step

  bool operator==(const EvalConfig&) const = default;
};

struct LogConfig {
  int interval = 1;
  std::string progress = "auto";  // auto | on | off (auto: a live bar only on a TTY)
  bool tensorboard = false;       // also write <run_dir>/tensorboard/ event files (docs/observability.md)
  int profile_step = 0;           // Chrome trace of the N-th step this invocation runs (0 = off)

  bool operator==(const LogConfig&) const = default;
};

struct Config {
  ModelConfig model;
  MoEConfig moe;
  ParallelConfig parallel;
  TrainConfig train;
  OptimConfig optim;
  DataConfig data;
  CheckpointConfig checkpoint;
  LogConfig log;
  rl::RlConfig rl;
  EvalConfig eval;

  int head_dim() const { return model.head_dim > 0 ? model.head_dim : model.hidden / model.heads; }
  int moe_ffn() const { return moe.ffn_hidden_size > 0 ? moe.ffn_hidden_size : model.ffn; }
  bool is_moe_layer(int layer) const;
  // Micro-batches per step of one data-parallel replica when there are `dp` replicas.
  int micro_batches_per_replica(int dp) const {
    return train.global_batch > 0 ? train.global_batch / (train.micro_batch * dp) : train.micro_batches;
  }

  bool operator==(const Config&) const = default;
};

}  // namespace foldmoe
