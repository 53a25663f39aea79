// The [rl] section: the typed RL post-training configuration (every hyperparameter and switch of
// the GRPO / DAPO / HAPO pipeline plus foldmoe's run-length, data and checkpoint keys) that IS
// Config::rl. Its TOML keys are dotted (`[rl] hapo.ats.tau = 0.05`, `--rl.hapo.ats.tau=0.05`)
// and listed in the one field table (config_fields.cpp); enums are spelled as in to_string().
// Defaults are the `hapo` preset's. Setting `preset` resets exactly the fields the preset
// controls (apply_rl_preset): in TOML it is applied before the other [rl] keys, flags apply in
// order, so keys set explicitly override the preset.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::rl {

enum class RlPreset { Grpo, Dapo, Hapo, HapoReleased };
enum class AdvantageEstimator { Tlga, Grpo };
enum class TlgaFallbackScope { ValidAndZero, Valid };
enum class LossAggregation { TokenMean, SeqMeanTokenMean, SeqMeanTokenSum, SeqMeanTokenSumNorm };
enum class EquivalenceFallback { None, Numeric };
enum class DynamicSamplingMetric { Acc, Reward };
enum class HhatSign { Intended, PaperCode };
enum class HhatScope { MinibatchOld, MicrobatchCurrent };
enum class RouterReplayMode { Rollout, Old, Off };

// Spellings used by TOML and flags ("hapo-released", "paper-code", ...). parse_enum returns
// std::nullopt for an unknown spelling; enum_choices lists the spellings as "a | b | c".
std::string_view to_string(RlPreset v);
std::string_view to_string(AdvantageEstimator v);
std::string_view to_string(TlgaFallbackScope v);
std::string_view to_string(LossAggregation v);
std::string_view to_string(EquivalenceFallback v);
std::string_view to_string(DynamicSamplingMetric v);
std::string_view to_string(HhatSign v);
std::string_view to_string(HhatScope v);
std::string_view to_string(RouterReplayMode v);
template <typename E>
std::optional<E> parse_enum(std::string_view s);
template <typename E>
std::string enum_choices();

struct RlRolloutConfig {
  double temperature = 1.0;  // T_base
  double top_p = 1.0;
  std::optional<int> top_k;  // absent = off
  bool operator==(const RlRolloutConfig&) const = default;
};

struct RlAdvantageConfig {
  AdvantageEstimator estimator = AdvantageEstimator::Tlga;
  double eps = 1e-6;
  bool norm_by_std = true;               // false = mean-centred only (Dr. GRPO)
  double tlga_fallback_threshold = 5.0;  // <= 0 disables the GRPO fallback
  TlgaFallbackScope tlga_fallback_scope = TlgaFallbackScope::ValidAndZero;
  bool operator==(const RlAdvantageConfig&) const = default;
};

struct RlLossConfig {
  double clip_low = 0.2;      // ε_low
  double clip_high = 0.28;    // ε_high
  double dual_clip_c = 10.0;  // 0 disables; otherwise > 1
  LossAggregation aggregation = LossAggregation::TokenMean;
  double kl_coef = 0.0;       // > 0 needs a frozen reference model
  double entropy_coef = 0.0;  // entropy bonus; unused by every preset and not implemented (must be 0)
  bool operator==(const RlLossConfig&) const = default;
};

struct RlOverlongConfig {
  bool enabled = true;           // soft overlong punishment of responses near max_response_tokens
  int64_t buffer_tokens = 4096;  // L_cache
  double penalty_factor = 1.0;   // f
  bool operator==(const RlOverlongConfig&) const = default;
};

struct RlRewardConfig {
  RlOverlongConfig overlong;
  EquivalenceFallback equivalence_fallback = EquivalenceFallback::None;
  std::string template_name = "dapo-math";  // TOML key `template`
  bool operator==(const RlRewardConfig&) const = default;
};

struct RlDapoConfig {
  bool overlong_filter = false;  // mask truncated responses out of the loss and its token count
  bool operator==(const RlDapoConfig&) const = default;
};

struct RlDynamicSamplingConfig {
  bool enabled = false;
  std::optional<int> gen_prompts_per_round;  // absent = 3·P
  DynamicSamplingMetric metric = DynamicSamplingMetric::Acc;
  int max_rounds = 10;  // <= 0 = unlimited
  bool operator==(const RlDynamicSamplingConfig&) const = default;
};

struct RlAtsConfig {
  bool enabled = true;
  double tau = 0.05;
  bool operator==(const RlAtsConfig&) const = default;
};
struct RlDarConfig {
  bool enabled = true;
  double beta = 1.0;
  bool operator==(const RlDarConfig&) const = default;
};
struct RlAacConfig {
  bool enabled = true;
  double alpha = 1.0;
  bool operator==(const RlAacConfig&) const = default;
};

struct RlHapoConfig {
  HhatSign hhat_sign = HhatSign::Intended;
  HhatScope hhat_scope = HhatScope::MinibatchOld;
  double entropy_pivot = 0.8;  // ρ
  RlAtsConfig ats;
  RlDarConfig dar;
  RlAacConfig aac;
  bool operator==(const RlHapoConfig&) const = default;
};

struct RlOptimConfig {
  double lr = 1e-6;
  int warmup_steps = 10;  // W, in RL steps: lr_k = lr · min(1, k/W)
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double grad_clip = 1.0;
  bool operator==(const RlOptimConfig&) const = default;
};

struct RlEvalConfig {
  bool before_train = true;
  int every = 5;
  int samples = 8;
  double temperature = 0.5;
  double top_p = 0.7;
  bool operator==(const RlEvalConfig&) const = default;
};

struct RlRouterReplayConfig {
  std::optional<RouterReplayMode> mode;  // absent = rollout for MoE models, off for dense ones
  bool freeze_expert_bias = true;
  bool operator==(const RlRouterReplayConfig&) const = default;
};

struct RlConfig {
  RlPreset preset = RlPreset::Hapo;
  int64_t prompts_per_step = 512;  // P
  int group_size = 16;             // n
  int64_t minibatch_prompts = 32;  // must divide P
  int ppo_epochs = 1;
  int64_t max_prompt_tokens = 1024;
  int64_t max_response_tokens = 10240;  // L_max
  int64_t seed = 1234;
  // foldmoe additions: run length, data, micro-batching, checkpoints.
  int steps = 100;
  std::vector<std::string> tasks = {"add"};  // synthetic RL tasks (when data is empty)
  std::string data;                          // JSONL {"prompt", "answer"} training file ("" = synthetic)
  std::string eval_data;                     // JSONL held-out file ("" = synthetic eval sets / none)
  // How JSONL prompts are wrapped (docs/chat-templates.md): model (the tokenizer's own template),
  // chatml, llama3, or plain (the prompt text as it is, after <bos>: the behaviour before templates).
  std::string chat_template = "plain";
  int eval_questions = 200;                  // held-out questions per synthetic task
  int micro_batch = 64;                      // sequences per forward
  std::string reference;                     // frozen reference checkpoint for loss.kl_coef > 0
  int checkpoint_every = 0;                  // 0 = only at the end
  RlRolloutConfig rollout;
  RlAdvantageConfig advantage;
  RlLossConfig loss;
  RlRewardConfig reward;
  RlDapoConfig dapo;
  RlDynamicSamplingConfig dynamic_sampling;
  RlHapoConfig hapo;
  RlOptimConfig optim;
  RlEvalConfig eval;
  RlRouterReplayConfig router_replay;

  // Derived quantities.
  int64_t num_minibatches() const { return prompts_per_step / minibatch_prompts; }  // M
  int64_t gen_prompts_per_round() const {
    return dynamic_sampling.gen_prompts_per_round ? int64_t(*dynamic_sampling.gen_prompts_per_round)
                                                  : 3 * prompts_per_step;
  }
  RouterReplayMode router_replay_mode(bool model_is_moe) const {
    return router_replay.mode.value_or(model_is_moe ? RouterReplayMode::Rollout : RouterReplayMode::Off);
  }
  // lr of the 1-based RL step k: lr · min(1, k/W) (W <= 0: constant).
  double learning_rate(int64_t k) const;

  bool operator==(const RlConfig&) const = default;
};

// Overwrites exactly the fields a preset controls; everything else is left alone.
// grpo:  GRPO advantages, clip 0.2/0.2, seq-mean-token-mean, overlong off, ATS/DAR/AAC off, DS off.
// dapo:  GRPO advantages, clip 0.2/0.28, token-mean, overlong on, ATS/DAR/AAC off, DS on (acc, 10).
// hapo:  TLGA (fallback 5, valid-and-zero), clip 0.2/0.28, token-mean, overlong on, ATS τ = 0.05,
//        DAR β = 1, AAC α = 1, ρ = 0.8, intended sign, minibatch-old scope, DS off, equivalence none.
// hapo-released: hapo with paper-code sign, clip_high 0.2, microbatch-current scope,
//        equivalence numeric.
void apply_rl_preset(RlConfig& c, RlPreset p);
// The defaults of a preset: RlConfig{} with apply_rl_preset(p).
RlConfig rl_preset_config(RlPreset p);

}  // namespace foldmoe::rl
