// Typed RL post-training configuration (spec 04 §7 and §13): every hyperparameter and switch of
// the GRPO / DAPO / HAPO pipeline, with the defaults of the `hapo` preset (the spec's foldmoe
// column), and the presets `grpo`, `dapo`, `hapo`, `hapo-released`.
//
// Intended TOML keys (section `[rl]` and sub-sections; flags mirror them, e.g.
// `--rl.hapo.hhat_sign=paper-code`). The field behind each key is given after the arrow.
//
//   rl.preset                                   -> preset                  grpo|dapo|hapo|hapo-released
//   rl.prompts_per_step                         -> prompts_per_step        P
//   rl.group_size                               -> group_size              n
//   rl.minibatch_prompts                        -> minibatch_prompts       M = P / minibatch_prompts
//   rl.ppo_epochs                               -> ppo_epochs
//   rl.max_prompt_tokens                        -> max_prompt_tokens
//   rl.max_response_tokens                      -> max_response_tokens     L_max
//   rl.seed                                     -> seed                    (foldmoe addition)
//   rl.rollout.temperature                      -> rollout.temperature     T_base
//   rl.rollout.top_p                            -> rollout.top_p
//   rl.rollout.top_k                            -> rollout.top_k           absent = off
//   rl.advantage.estimator                      -> advantage.estimator     tlga|grpo
//   rl.advantage.eps                            -> advantage.eps
//   rl.advantage.norm_by_std                    -> advantage.norm_by_std
//   rl.advantage.tlga_fallback_threshold        -> advantage.tlga_fallback_threshold  (<= 0 disables)
//   rl.advantage.tlga_fallback_scope            -> advantage.tlga_fallback_scope      valid-and-zero|valid
//   rl.loss.clip_low / rl.loss.clip_high        -> loss.clip_low / loss.clip_high
//   rl.loss.dual_clip_c                         -> loss.dual_clip_c        0 disables, else > 1
//   rl.loss.aggregation                         -> loss.aggregation        token-mean|seq-mean-token-mean|
//                                                                          seq-mean-token-sum|seq-mean-token-sum-norm
//   rl.loss.kl_coef                             -> loss.kl_coef
//   rl.loss.entropy_coef                        -> loss.entropy_coef
//   rl.reward.overlong.enabled                  -> reward.overlong.enabled
//   rl.reward.overlong.buffer_tokens            -> reward.overlong.buffer_tokens   L_cache
//   rl.reward.overlong.penalty_factor           -> reward.overlong.penalty_factor  f
//   rl.reward.equivalence_fallback              -> reward.equivalence_fallback     none|numeric
//   rl.reward.template                          -> reward.template_name            dapo-math
//   rl.dapo.overlong_filter                     -> dapo.overlong_filter
//   rl.dynamic_sampling.enabled                 -> dynamic_sampling.enabled
//   rl.dynamic_sampling.gen_prompts_per_round   -> dynamic_sampling.gen_prompts_per_round  absent = 3·P
//   rl.dynamic_sampling.metric                  -> dynamic_sampling.metric  acc|reward
//   rl.dynamic_sampling.max_rounds              -> dynamic_sampling.max_rounds  <= 0 unlimited
//   rl.hapo.hhat_sign                           -> hapo.hhat_sign          intended|paper-code
//   rl.hapo.hhat_scope                          -> hapo.hhat_scope         minibatch-old|microbatch-current
//   rl.hapo.entropy_pivot                       -> hapo.entropy_pivot      ρ
//   rl.hapo.ats.enabled / rl.hapo.ats.tau       -> hapo.ats.enabled / hapo.ats.tau
//   rl.hapo.dar.enabled / rl.hapo.dar.beta      -> hapo.dar.enabled / hapo.dar.beta
//   rl.hapo.aac.enabled / rl.hapo.aac.alpha     -> hapo.aac.enabled / hapo.aac.alpha
//   rl.optim.lr / warmup_steps / weight_decay   -> optim.lr / optim.warmup_steps / optim.weight_decay
//   rl.optim.betas                              -> optim.beta1, optim.beta2  (a two-element list)
//   rl.optim.eps / rl.optim.grad_clip           -> optim.eps / optim.grad_clip
//   rl.eval.before_train / every / samples      -> eval.before_train / eval.every / eval.samples
//   rl.eval.temperature / rl.eval.top_p         -> eval.temperature / eval.top_p
//   rl.router_replay.mode                       -> router_replay.mode      rollout|old|off; absent = by model
//   rl.router_replay.freeze_expert_bias         -> router_replay.freeze_expert_bias
//
// Loading order (for whoever wires this into the config table): read `rl.preset` first, start from
// rl_preset_config(preset), then apply every key the user set explicitly (keys override the preset).
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

// Spellings used by TOML and flags ("hapo-released", "paper-code", ...). parse_* throw UserError
// naming `key` and listing the allowed values.
std::string_view to_string(RlPreset v);
std::string_view to_string(AdvantageEstimator v);
std::string_view to_string(TlgaFallbackScope v);
std::string_view to_string(LossAggregation v);
std::string_view to_string(EquivalenceFallback v);
std::string_view to_string(DynamicSamplingMetric v);
std::string_view to_string(HhatSign v);
std::string_view to_string(HhatScope v);
std::string_view to_string(RouterReplayMode v);
RlPreset parse_rl_preset(std::string_view s, std::string_view key = "rl.preset");
AdvantageEstimator parse_advantage_estimator(std::string_view s, std::string_view key = "rl.advantage.estimator");
TlgaFallbackScope parse_tlga_fallback_scope(std::string_view s,
                                            std::string_view key = "rl.advantage.tlga_fallback_scope");
LossAggregation parse_loss_aggregation(std::string_view s, std::string_view key = "rl.loss.aggregation");
EquivalenceFallback parse_equivalence_fallback(std::string_view s,
                                               std::string_view key = "rl.reward.equivalence_fallback");
DynamicSamplingMetric parse_dynamic_sampling_metric(std::string_view s,
                                                    std::string_view key = "rl.dynamic_sampling.metric");
HhatSign parse_hhat_sign(std::string_view s, std::string_view key = "rl.hapo.hhat_sign");
HhatScope parse_hhat_scope(std::string_view s, std::string_view key = "rl.hapo.hhat_scope");
RouterReplayMode parse_router_replay_mode(std::string_view s, std::string_view key = "rl.router_replay.mode");

struct RlRolloutConfig {
  double temperature = 1.0;  // T_base
  double top_p = 1.0;
  std::optional<int> top_k;  // absent = off
  bool operator==(const RlRolloutConfig&) const = default;
};

struct RlAdvantageConfig {
  AdvantageEstimator estimator = AdvantageEstimator::Tlga;
  double eps = 1e-6;
  bool norm_by_std = true;                  // false = mean-centred only (Dr. GRPO)
  double tlga_fallback_threshold = 5.0;     // <= 0 disables the GRPO fallback
  TlgaFallbackScope tlga_fallback_scope = TlgaFallbackScope::ValidAndZero;
  bool operator==(const RlAdvantageConfig&) const = default;
};

struct RlLossConfig {
  double clip_low = 0.2;    // ε_low
  double clip_high = 0.28;  // ε_high
  double dual_clip_c = 10.0;  // 0 disables; otherwise > 1
  LossAggregation aggregation = LossAggregation::TokenMean;
  double kl_coef = 0.0;       // > 0 needs a frozen reference model
  double entropy_coef = 0.0;  // entropy bonus; unused by every preset and not implemented (must be 0)
  bool operator==(const RlLossConfig&) const = default;
};

struct RlOverlongConfig {
  bool enabled = true;          // soft overlong punishment (§4.4)
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
  bool overlong_filter = false;  // mask truncated responses out of the loss and N_mb (§4.5)
  bool operator==(const RlDapoConfig&) const = default;
};

struct RlDynamicSamplingConfig {
  bool enabled = false;
  std::optional<int64_t> gen_prompts_per_round;  // absent = 3·P
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
  int64_t prompts_per_step = 512;   // P
  int group_size = 16;              // n
  int64_t minibatch_prompts = 32;   // must divide P
  int ppo_epochs = 1;
  int64_t max_prompt_tokens = 1024;
  int64_t max_response_tokens = 10240;  // L_max
  int64_t seed = 1234;
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
    return dynamic_sampling.gen_prompts_per_round.value_or(3 * prompts_per_step);
  }
  RouterReplayMode router_replay_mode(bool model_is_moe) const {
    return router_replay.mode.value_or(model_is_moe ? RouterReplayMode::Rollout : RouterReplayMode::Off);
  }
  // lr of the 1-based RL step k: lr · min(1, k/W) (W <= 0: constant).
  double learning_rate(int64_t k) const;

  bool operator==(const RlConfig&) const = default;
};

// Overwrites exactly the fields a preset controls (spec §7.1); everything else is left alone.
// grpo:  GRPO advantages, clip 0.2/0.2, seq-mean-token-mean, overlong off, ATS/DAR/AAC off, DS off.
// dapo:  GRPO advantages, clip 0.2/0.28, token-mean, overlong on, ATS/DAR/AAC off, DS on (acc, 10).
// hapo:  TLGA (fallback 5, valid-and-zero), clip 0.2/0.28, token-mean, overlong on, ATS τ = 0.05,
//        DAR β = 1, AAC α = 1, ρ = 0.8, intended sign, minibatch-old scope, DS off, equivalence none.
// hapo-released: hapo with paper-code sign, clip_high 0.2, microbatch-current scope,
//        equivalence numeric.
void apply_rl_preset(RlConfig& c, RlPreset p);
// The defaults of a preset: RlConfig{} with apply_rl_preset(p).
RlConfig rl_preset_config(RlPreset p);

// Facts about the rest of the run that some RL rules need.
struct RlRunFacts {
  bool model_is_moe = false;
  bool moe_has_capacity_factor = false;  // moe.capacity_factor set and >= 0
  bool has_reference_checkpoint = false;
};

// Every rule of spec §13 plus range checks; throws one UserError listing every violation as
// "config error <key>: <what>\n  fix: <fix>".
void validate_rl_config(const RlConfig& c, const RlRunFacts& facts = {});

}  // namespace foldmoe::rl
