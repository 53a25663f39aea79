// Typed configuration: the one source of truth (DESIGN.md §3 rule 1). TOML keys
// (`[section] key = value`) and command-line flags (`--section.key=value`) are derived from the
// field table in config_fields.cpp; nothing else parses configuration.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace foldmoe {

struct ModelConfig {
  int layers = 2;
  int hidden = 64;
  int heads = 4;
  int kv_heads = 2;       // G query groups; heads mod kv_heads == 0
  int head_dim = 0;       // 0 = hidden / heads
  int ffn = 128;          // dense SwiGLU width F
  int vocab = 0;          // 0 = the data's vocabulary size
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;  // output projections use init_std / sqrt(2 * layers)

  bool operator==(const ModelConfig&) const = default;
};

struct MoEConfig {
  int num_experts = 0;  // 0 = dense model (no MoE layers)
  int topk = 2;
  int ffn_hidden_size = 0;  // 0 = model.ffn
  std::vector<int> layer_freq = {1};  // one entry f: layer i is MoE iff i mod f == 0; or L entries of 0/1
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
  std::vector<double> aux_loss_coeff = {0.0};
  std::optional<double> z_loss_coeff;
  std::optional<double> capacity_factor;  // absent or negative = dropless
  std::string drop_policy = "probs";      // probs | position
  bool pad_to_capacity = false;
  std::vector<int> capacity_partition;  // test option [tp, cp], spec 02 §3.5
  std::string dispatcher = "alltoall";  // alltoall | allgather
  int shared_expert_ffn_hidden_size = 0;
  bool shared_expert_gate = false;

  bool operator==(const MoEConfig&) const = default;
};

struct ParallelConfig {
  int tp = 1, cp = 1, pp = 1, vpp = 1, ep = 1;
  int etp = 0;  // 0 = tp
  std::string order = "tp-cp-ep-dp-pp";
  std::string cp_comm_type = "p2p";  // p2p (ring) | all_gather (spec 03 §4.5)
  bool sequence_parallel = true;  // SP with TP > 1; required when the model has MoE layers (L7/M10)
  bool distributed_optimizer = false;
  int64_t bucket_size = 40000000;  // elements per gradient-reduction bucket (spec 03 §9.1)
  // Explicit pipeline split: layers per virtual stage s = c·pp + r (pp·vpp entries); empty = even.
  std::vector<int> pipeline_layers;

  bool operator==(const ParallelConfig&) const = default;
};

struct TrainConfig {
  int steps = 300;
  int micro_batch = 8;     // B sequences per micro-batch
  int micro_batches = 1;   // M micro-batches per step (gradient accumulation) when global_batch = 0
  int global_batch = 0;    // sequences per step; > 0: M = global_batch / (micro_batch · DP) (rule L13)
  int seq_len = 64;        // S
  int64_t seed = 1234;
  bool per_token_loss = false;
  std::string run_dir = "runs/default";
  // Activation recomputation: none | moe (MoE blocks re-run in backward) | full (whole pipeline
  // chunks re-run from their input). Losses and gradients are identical in every mode.
  std::string recompute = "none";

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
  std::string source = "synthetic";  // synthetic
  std::vector<std::string> tasks = {"add", "reverse", "sort", "lookup"};
  int eval_samples = 200;  // per task for `foldmoe eval`

  bool operator==(const DataConfig&) const = default;
};

struct CheckpointConfig {
  std::string dir;    // "" = <run_dir>/checkpoints
  int interval = 0;   // save every N steps (0 = only at the end)
  std::string load;   // resume from this checkpoint directory
  bool save_final = true;

  bool operator==(const CheckpointConfig&) const = default;
};

struct LogConfig {
  int interval = 1;
  std::string progress = "auto";  // auto | on | off (auto: a live bar only on a TTY)

  bool operator==(const LogConfig&) const = default;
};

// [rl] RL post-training (spec 04 §13; src/rl/rl_config_bridge.h turns it into rl::RlConfig). Keys
// are dotted like the spec's (`[rl] hapo.ats.tau = 0.05`, `--rl.hapo.ats.tau=0.05`); enums are
// strings parsed by the rl_config parse_* functions. Setting `preset` first resets every field the
// preset controls (TOML: `preset` is applied before the other [rl] keys; flags: in order), so keys
// set explicitly override the preset. Defaults are the `hapo` preset's.
struct RlSection {
  std::string preset = "hapo";
  int64_t prompts_per_step = 512;
  int group_size = 16;
  int64_t minibatch_prompts = 32;
  int ppo_epochs = 1;
  int64_t max_prompt_tokens = 1024;
  int64_t max_response_tokens = 10240;
  int64_t seed = 1234;
  // foldmoe additions: run length, data, micro-batching, checkpoints.
  int steps = 100;
  std::vector<std::string> tasks = {"add"};  // synthetic RL tasks (when data is empty)
  std::string data;                          // JSONL {"prompt", "answer"} training file ("" = synthetic)
  std::string eval_data;                     // JSONL held-out file ("" = synthetic eval sets / none)
  int eval_questions = 200;                  // held-out questions per synthetic task
  int micro_batch = 64;                      // sequences per forward
  int checkpoint_every = 0;                  // 0 = only at the end
  std::string reference;                     // frozen reference checkpoint for loss_kl_coef > 0
  double rollout_temperature = 1.0;
  double rollout_top_p = 1.0;
  std::optional<int> rollout_top_k;
  std::string advantage_estimator = "tlga";
  double advantage_eps = 1e-6;
  bool advantage_norm_by_std = true;
  double advantage_tlga_fallback_threshold = 5.0;
  std::string advantage_tlga_fallback_scope = "valid-and-zero";
  double loss_clip_low = 0.2;
  double loss_clip_high = 0.28;
  double loss_dual_clip_c = 10.0;
  std::string loss_aggregation = "token-mean";
  double loss_kl_coef = 0.0;
  double loss_entropy_coef = 0.0;
  bool reward_overlong_enabled = true;
  int64_t reward_overlong_buffer_tokens = 4096;
  double reward_overlong_penalty_factor = 1.0;
  std::string reward_equivalence_fallback = "none";
  std::string reward_template = "dapo-math";
  bool dapo_overlong_filter = false;
  bool dynamic_sampling_enabled = false;
  std::optional<int> dynamic_sampling_gen_prompts_per_round;  // none = 3·P
  std::string dynamic_sampling_metric = "acc";
  int dynamic_sampling_max_rounds = 10;
  std::string hapo_hhat_sign = "intended";
  std::string hapo_hhat_scope = "minibatch-old";
  double hapo_entropy_pivot = 0.8;
  bool hapo_ats_enabled = true;
  double hapo_ats_tau = 0.05;
  bool hapo_dar_enabled = true;
  double hapo_dar_beta = 1.0;
  bool hapo_aac_enabled = true;
  double hapo_aac_alpha = 1.0;
  double optim_lr = 1e-6;
  int optim_warmup_steps = 10;
  double optim_weight_decay = 0.1;
  std::vector<double> optim_betas = {0.9, 0.999};
  double optim_eps = 1e-8;
  double optim_grad_clip = 1.0;
  bool eval_before_train = true;
  int eval_every = 5;
  int eval_samples = 8;
  double eval_temperature = 0.5;
  double eval_top_p = 0.7;
  std::string router_replay_mode = "auto";  // auto (rollout for MoE, off for dense) | rollout | old | off
  bool router_replay_freeze_expert_bias = true;

  bool operator==(const RlSection&) const = default;
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
  RlSection rl;

  int head_dim() const { return model.head_dim > 0 ? model.head_dim : model.hidden / model.heads; }
  int moe_ffn() const { return moe.ffn_hidden_size > 0 ? moe.ffn_hidden_size : model.ffn; }
  bool is_moe_layer(int layer) const;
  // Rule L12 for the pipeline split ([model] layers, [parallel] pp, vpp, pipeline_layers): every
  // violation as {what, fix}; empty when the split is possible.
  std::vector<std::pair<std::string, std::string>> pipeline_split_problems() const;
  // Micro-batches per step of one data-parallel replica when there are `dp` replicas.
  int micro_batches_per_replica(int dp) const {
    return train.global_batch > 0 ? train.global_batch / (train.micro_batch * dp) : train.micro_batches;
  }

  bool operator==(const Config&) const = default;
};

// Parses TOML text (source names the file for messages) over the defaults. Unknown sections/keys
// and wrong types raise UserError naming the key (with a nearest-name suggestion). Values are not
// checked here: call validate() after apply_overrides().
Config config_from_toml(const std::string& text, const std::string& source);
// Applies `--section.key=value` overrides in order.
void apply_overrides(Config& c, const std::vector<std::string>& flags);
// Every rule that can be checked without the world size (spec 01 §5 L1 L2 L6-L12 L14 L15, spec 02
// §11 M1-M11, model/train/optim/data/log ranges). Throws one UserError listing every violation,
// each as "<config|layout> error <id>: <what>\n  fix: <fix>".
void validate(const Config& c);
// The resolved configuration as TOML (written to the run directory).
std::string config_to_toml(const Config& c);

}  // namespace foldmoe
