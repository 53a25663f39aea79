#include "config/config_fields.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <type_traits>
#include <utility>

namespace foldmoe {
namespace {

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};

template <typename T>
constexpr bool is_enum_field() {
  if constexpr (is_optional<T>::value)
    return std::is_enum_v<typename T::value_type>;
  else
    return std::is_enum_v<T>;
}

template <typename T>
consteval FieldType type_of() {
  if constexpr (is_enum_field<T>())
    return FieldType::Enum;
  else if constexpr (std::is_same_v<T, int>)
    return FieldType::Int;
  else if constexpr (std::is_same_v<T, int64_t>)
    return FieldType::Int64;
  else if constexpr (std::is_same_v<T, double>)
    return FieldType::Double;
  else if constexpr (std::is_same_v<T, bool>)
    return FieldType::Bool;
  else if constexpr (std::is_same_v<T, std::string>)
    return FieldType::String;
  else if constexpr (std::is_same_v<T, std::optional<double>>)
    return FieldType::OptDouble;
  else if constexpr (std::is_same_v<T, std::optional<int>>)
    return FieldType::OptInt;
  else if constexpr (std::is_same_v<T, std::vector<int>>)
    return FieldType::IntList;
  else if constexpr (std::is_same_v<T, std::vector<double>>)
    return FieldType::DoubleList;
  else if constexpr (std::is_same_v<T, std::vector<std::string>>)
    return FieldType::StringList;
  else
    static_assert(sizeof(T) == 0, "config field of an unsupported type");
}

// Spellings of an enum field; an optional enum reads "auto" as unset (the value is then chosen
// from the rest of the run, e.g. router replay by model kind).
template <typename T>
struct EnumCodecOf {
  static bool parse(std::string_view text, void* value) {
    T& v = *static_cast<T*>(value);
    if constexpr (is_optional<T>::value) {
      if (text == "auto") {
        v.reset();
        return true;
      }
      const auto e = rl::parse_enum<typename T::value_type>(text);
      if (e) v = *e;
      return e.has_value();
    } else {
      const auto e = rl::parse_enum<T>(text);
      if (e) v = *e;
      return e.has_value();
    }
  }
  static std::string_view print(const void* value) {
    const T& v = *static_cast<const T*>(value);
    if constexpr (is_optional<T>::value)
      return v ? rl::to_string(*v) : std::string_view("auto");
    else
      return rl::to_string(v);
  }
  static std::string choices() {
    if constexpr (is_optional<T>::value)
      return "auto | " + rl::enum_choices<typename T::value_type>();
    else
      return rl::enum_choices<T>();
  }
  static constexpr EnumCodec codec{&parse, &print, &choices};
};

template <typename T>
FieldRef make_ref(T* p) {
  if constexpr (is_enum_field<T>())
    return EnumRef{p, &EnumCodecOf<T>::codec};
  else
    return p;
}
template <typename T>
ConstFieldRef make_cref(const T* p) {
  if constexpr (is_enum_field<T>())
    return ConstEnumRef{p, &EnumCodecOf<T>::codec};
  else
    return p;
}

void apply_preset(Config& c) {
  rl::apply_rl_preset(c.rl, c.rl.preset);
}

// `member` is an expression on a Config (`model.layers`, `rl.hapo.ats.tau`).
#define FOLDMOE_FIELD(section, key, member, list, hook, help)                       \
  ConfigField {                                                                     \
    section, key, help, type_of<decltype(std::declval<Config&>().member)>(), list,  \
        [](Config& c) -> FieldRef { return make_ref(&c.member); },                  \
        [](const Config& c) -> ConstFieldRef { return make_cref(&c.member); }, hook \
  }
// The key string is the member name, so a key cannot drift from its struct member.
#define F(sec, key, help) FOLDMOE_FIELD(#sec, #key, sec.key, false, nullptr, help)
#define F_LIST_OR_SCALAR(sec, key, help) FOLDMOE_FIELD(#sec, #key, sec.key, true, nullptr, help)
// [rl] keys are dotted like the member path (`hapo.ats.tau` is rl.hapo.ats.tau).
#define R(path, help) FOLDMOE_FIELD("rl", #path, rl.path, false, nullptr, help)

constexpr ConfigField kFields[] = {
    // [model]
    F(model, layers, "number of transformer layers L"),
    F(model, hidden, "hidden size H"),
    F(model, heads, "attention (query) heads A"),
    F(model, kv_heads, "key/value heads G (query groups); heads mod kv_heads == 0"),
    F(model, head_dim, "per-head dimension (0 = hidden / heads); even, for RoPE"),
    F(model, ffn, "dense SwiGLU width F"),
    F(model, vocab, "vocabulary size (0 = the data's vocabulary size)"),
    F(model, rope_theta, "RoPE base"),
    F(model, norm_eps, "RMSNorm epsilon"),
    F(model, init_std, "init std; output projections use init_std / sqrt(2 * layers)"),
    F(model, max_seq_len, "longest sequence the model runs on: train.seq_len and generate/RL prompt + new tokens"),
    F(model, qk_norm,
      "RMSNorm of q and k before RoPE: none | head (each head, one [head_dim] weight) | full (whole projection)"),
    F(model, attention_bias, "biases on the q, k and v projections (not the output projection)"),
    F(model, tie_embeddings, "the LM head uses the embedding matrix (no lm_head.weight)"),
    F(model, rope_scaling, "RoPE frequency scaling: none | linear | llama3 | yarn"),
    F(model, rope_scaling_factor, "RoPE scaling factor (linear, llama3, yarn)"),
    F(model, rope_original_max_position, "pre-trained context length of llama3 / yarn scaling (0 = unset)"),
    F(model, rope_low_freq_factor, "llama3 scaling: low-frequency factor"),
    F(model, rope_high_freq_factor, "llama3 scaling: high-frequency factor"),
    F(model, rope_beta_fast, "yarn scaling: beta_fast (rotations where extrapolation ends)"),
    F(model, rope_beta_slow, "yarn scaling: beta_slow (rotations where interpolation begins)"),
    F(model, rope_attention_factor, "yarn scaling: cos/sin multiplier (none = 0.1 ln(factor) + 1)"),
    // [moe]
    F(moe, num_experts, "routed experts E (0 = dense model, no MoE layers)"),
    F(moe, topk, "experts per token k"),
    F(moe, ffn_hidden_size, "routed expert width F_moe (0 = model.ffn)"),
    F_LIST_OR_SCALAR(moe, layer_freq, "f: layer i is MoE iff i mod f == 0; or a list of L entries 0/1"),
    F(moe, score_function, "router score function: softmax | sigmoid"),
    F(moe, pre_softmax, "softmax over all experts before top-k (softmax only)"),
    F(moe, topk_scaling_factor, "multiply combine weights by this factor (none = 1)"),
    F(moe, num_groups, "group-limited routing: number of expert groups G_r (none = off)"),
    F(moe, group_topk, "group-limited routing: groups kept per token g (none = off)"),
    F(moe, router_bias, "add a learned bias to the router logits"),
    F(moe, enable_expert_bias, "aux-loss-free balancing bias (sigmoid router only)"),
    F(moe, bias_update_rate, "expert-bias update rate u per global batch"),
    F(moe, input_jitter_eps, "router input jitter epsilon (none = off)"),
    F_LIST_OR_SCALAR(moe, load_balancing_type, "aux losses: aux_loss seq_aux_loss global_aux_loss none"),
    F_LIST_OR_SCALAR(moe, aux_loss_coeff, "coefficient per load_balancing_type entry"),
    F(moe, z_loss_coeff, "router z-loss coefficient (none = off)"),
    F(moe, capacity_factor, "expert capacity factor > 0 (none or negative = dropless)"),
    F(moe, drop_policy, "which tokens an over-full expert keeps: probs | position"),
    F(moe, pad_to_capacity, "pad every expert's input to its capacity"),
    F(moe, capacity_partition, "test option [tp, cp]: capacity units of a TP x CP run"),
    F(moe, dispatcher, "token dispatcher: alltoall | allgather"),
    F(moe, shared_expert_ffn_hidden_size, "shared expert width F_sh (0 = none)"),
    F(moe, shared_expert_gate, "sigmoid gate on the shared expert output"),
    // [parallel]
    F(parallel, tp, "tensor-parallel size"),
    F(parallel, cp, "context-parallel size"),
    F(parallel, pp, "pipeline-parallel size"),
    F(parallel, vpp, "virtual pipeline stages per rank (interleaved schedule when > 1)"),
    F(parallel, ep, "expert-parallel size"),
    F(parallel, etp, "expert tensor-parallel size (0 = tp)"),
    F(parallel, order, "rank order, a permutation of tp-cp-ep-dp-pp (first varies fastest)"),
    F(parallel, cp_comm_type, "context-parallel K/V exchange: p2p (ring, default) | all_gather"),
    F(parallel, sequence_parallel, "sequence parallelism with TP > 1 (required for MoE)"),
    F(parallel, distributed_optimizer, "shard optimizer state over data-parallel ranks"),
    F(parallel, pipeline_layers, "layers per virtual pipeline stage c·pp + r (pp·vpp entries; empty = even split)"),
    F(parallel, bucket_size, "elements per gradient-reduction bucket (rounded up to lcm(group, 128) with ZeRO-1)"),
    F(parallel, timeout_s, "abort the job when a collective or p2p wait takes longer than this many seconds (0 = off)"),
    // [train]
    F(train, steps, "optimizer steps"),
    F(train, micro_batch, "sequences per micro-batch B"),
    F(train, micro_batches, "micro-batches per step M (gradient accumulation), used when global_batch = 0"),
    F(train, global_batch, "sequences per step (0 = micro_batch x micro_batches x DP); fixes the batch across layouts"),
    F(train, seq_len, "sequence length S"),
    F(train, seed, "seed of parameters, data and every random draw"),
    F(train, per_token_loss, "average the loss over all tokens of the global batch"),
    F(train, run_dir, "output directory (config, metrics, checkpoints)"),
    F(train, recompute, "activation recomputation: none | moe (MoE blocks) | full (whole pipeline chunks)"),
    F(train, precision, "fp32 | bf16 (bf16 matrix products, fp32 master weights, gradients and optimizer state)"),
    F(train, exit_signals, "signals that save a checkpoint and exit 0: SIGTERM SIGINT SIGUSR1 SIGUSR2 SIGHUP"),
    F(train, max_minutes, "wall-clock budget in minutes: save a checkpoint and exit 0 when used up (0 = none)"),
    F(train, skip_nonfinite_steps, "skip up to N non-finite steps in a row (no update); one more stops (0 = stop)"),
    F(train, skip_memory_check, "start even when the memory estimate exceeds this node's available memory"),
    // [optim]
    F(optim, lr, "peak learning rate"),
    F(optim, min_lr, "final learning rate of the cosine schedule"),
    F(optim, warmup_steps, "linear warmup steps"),
    F(optim, schedule, "learning-rate schedule: cosine | constant"),
    F(optim, weight_decay, "AdamW decoupled weight decay"),
    F(optim, beta1, "AdamW beta1"),
    F(optim, beta2, "AdamW beta2"),
    F(optim, eps, "AdamW epsilon"),
    F(optim, grad_clip, "clip the global gradient norm to this (0 = off)"),
    // [data]
    F(data, source, "data source: synthetic | indexed (Megatron .bin/.idx files)"),
    F(data, tasks, "synthetic tasks: add reverse sort lookup chain word"),
    F(data, eval_samples, "samples per task for `foldmoe eval`"),
    F(data, paths, "indexed data: dataset prefixes (PREFIX.bin + PREFIX.idx)"),
    F(data, weights, "indexed data: blend weight per path (empty = by size)"),
    F(data, split, "indexed data: train,valid,test proportions of the documents"),
    F(data, tokenizer, "char | tokenizer.json (or its directory) | SentencePiece .model"),
    F(data, eod_mask_loss, "no loss where the input token is the end-of-document one (Megatron)"),
    F(data, cache_dir, "indexed data: sample-index cache folder (empty = beside each dataset)"),
    F(data, allow_different_data, "resume a checkpoint that was trained on other data"),
    // [checkpoint]
    F(checkpoint, dir, "checkpoint directory (empty = <run_dir>/checkpoints)"),
    F(checkpoint, interval, "save every N steps (0 = only at the end)"),
    F(checkpoint, load, "resume from this checkpoint directory; auto = the run's latest complete one (empty = fresh)"),
    F(checkpoint, save_final, "save a checkpoint after the last step"),
    F(checkpoint, keep_last, "keep only the N newest checkpoints (0 = keep all)"),
    F(checkpoint, keep_every, "with keep_last: also keep every checkpoint whose step is a multiple of K"),
    F(checkpoint, async, "write checkpoints in a background thread while the next steps run"),
    // [log]
    F(log, interval, "print a step line every N steps"),
    F(log, progress, "live progress bar: auto (only on a TTY) | on | off"),
    F(log, tensorboard, "also write TensorBoard event files to <run_dir>/tensorboard/"),
    F(log, profile_step,
      "write a Chrome trace of the N-th step this run executes to <run_dir>/profile-step-S.json (0 = off)"),
    // [rl]
    FOLDMOE_FIELD("rl", "preset", rl.preset, false, &apply_preset,
                  "algorithm preset (applied first; the other [rl] keys override it)"),
    R(prompts_per_step, "P: prompts per RL step"),
    R(group_size, "n: responses per prompt"),
    R(minibatch_prompts, "prompts per mini-batch (M = P / minibatch_prompts updates per step)"),
    R(ppo_epochs, "passes over the batch per step"),
    R(max_prompt_tokens, "left-truncate prompts to this many tokens"),
    R(max_response_tokens, "L_max: maximum response tokens"),
    R(seed, "seed of prompts, sampling and permutations"),
    R(steps, "RL steps"),
    R(tasks, "synthetic RL tasks (when data is empty): add chain word reverse sort lookup"),
    R(data, "JSONL training file of {\"prompt\", \"answer\"} lines (empty = synthetic tasks)"),
    R(eval_data, "JSONL held-out file (empty = synthetic eval sets; none for JSONL data)"),
    R(chat_template, "chat template of JSONL prompts: model (the tokenizer's), chatml, llama3, plain (text as is)"),
    R(eval_questions, "held-out questions per synthetic task"),
    R(micro_batch, "sequences per forward pass (old log-probs and updates)"),
    R(reference, "frozen reference checkpoint for loss.kl_coef > 0 (e.g. the --init checkpoint)"),
    R(checkpoint_every, "save an RL checkpoint every N steps (0 = only at the end)"),
    R(rollout.temperature, "T_base: rollout temperature"),
    R(rollout.top_p, "rollout top-p (1 = off)"),
    R(rollout.top_k, "rollout top-k (none = off)"),
    R(advantage.estimator, "advantage estimator"),
    R(advantage.eps, "advantage denominator epsilon"),
    R(advantage.norm_by_std, "GRPO: divide by the group std (false = Dr. GRPO)"),
    R(advantage.tlga_fallback_threshold, "TLGA -> GRPO fallback threshold (<= 0 disables)"),
    R(advantage.tlga_fallback_scope, "responses the TLGA -> GRPO fallback looks at"),
    R(loss.clip_low, "epsilon_low"),
    R(loss.clip_high, "epsilon_high"),
    R(loss.dual_clip_c, "dual-clip constant c (0 disables; else > 1)"),
    R(loss.aggregation, "how the policy loss averages over tokens and sequences"),
    R(loss.kl_coef, "β_KL: k3 KL to the frozen rl.reference model per token (0 = off, no reference loaded)"),
    R(loss.entropy_coef, "entropy bonus: −coef · H(π_θ) per token, aggregated like the policy loss (0 = off)"),
    R(reward.overlong.enabled, "soft overlong punishment"),
    R(reward.overlong.buffer_tokens, "L_cache: overlong buffer"),
    R(reward.overlong.penalty_factor, "overlong penalty factor f"),
    R(reward.equivalence_fallback, "answer equivalence beyond exact match"),
    FOLDMOE_FIELD("rl", "reward.template", rl.reward.template_name, false, nullptr,
                  "prompt template for JSONL data: dapo-math (the only one)"),
    R(dapo.overlong_filter, "mask truncated responses out of the loss"),
    R(dynamic_sampling.enabled, "DAPO dynamic sampling"),
    R(dynamic_sampling.gen_prompts_per_round, "prompts per generation round (none = 3 P)"),
    R(dynamic_sampling.metric, "per-group value that must vary for a group to be kept"),
    R(dynamic_sampling.max_rounds, "generation rounds per step (<= 0 = unlimited)"),
    R(hapo.hhat_sign, "sign convention of the entropy modulation h-hat"),
    R(hapo.hhat_scope, "population over which h-hat is computed"),
    R(hapo.entropy_pivot, "rho: entropy quantile"),
    R(hapo.ats.enabled, "adaptive temperature sampling"),
    R(hapo.ats.tau, "ATS strength tau"),
    R(hapo.dar.enabled, "differential advantage redistribution"),
    R(hapo.dar.beta, "DAR strength beta"),
    R(hapo.aac.enabled, "asymmetric adaptive clipping"),
    R(hapo.aac.alpha, "AAC strength alpha"),
    R(optim.lr, "peak learning rate"),
    R(optim.warmup_steps, "linear warm-up in RL steps"),
    R(optim.weight_decay, "AdamW decoupled weight decay"),
    ConfigField{"rl", "optim.betas", "AdamW (beta1, beta2)", FieldType::DoublePair, false,
                [](Config& c) -> FieldRef {
                  return DoublePairRef{&c.rl.optim.beta1, &c.rl.optim.beta2};
                },
                [](const Config& c) -> ConstFieldRef {
                  return ConstDoublePairRef{&c.rl.optim.beta1, &c.rl.optim.beta2};
                }},
    R(optim.eps, "AdamW epsilon"),
    R(optim.grad_clip, "global gradient-norm clip"),
    R(eval.before_train, "evaluate the initial weights (step 0)"),
    R(eval.every, "evaluate every N steps (and at the last)"),
    R(eval.samples, "samples per held-out question"),
    R(eval.temperature, "evaluation temperature"),
    R(eval.top_p, "evaluation top-p"),
    R(router_replay.mode,
      "replay the rollout (or old-policy) routing in updates; auto = rollout for MoE, off for dense"),
    R(router_replay.freeze_expert_bias, "freeze expert-bias updates during RL"),
    // [eval]
    F(eval, interval, "validate on the data's held-out split every N steps (0 = never)"),
    F(eval, iters, "global batches per validation (the same batches every time)"),
    F(eval, at_end, "with interval > 0: also validate after the last step"),
};

#undef F
#undef F_LIST_OR_SCALAR
#undef R
#undef FOLDMOE_FIELD

// --- Completeness: every member of every section struct is in the table. ---------------------
// Counts an aggregate's members by brace-initialising it with ever more convertible arguments.
struct AnyArg {
  template <typename T>
  operator T() const;  // NOLINT: implicit on purpose; never defined (unevaluated only)
};
template <typename T, typename... A>
consteval std::size_t member_count() {
  if constexpr (requires { T{A{}..., AnyArg{}}; })
    return member_count<T, A..., AnyArg>();
  else
    return sizeof...(A);
}
consteval std::size_t fields_in(std::string_view section) {
  std::size_t n = 0;
  for (const ConfigField& f : kFields) n += f.section == section ? 1 : 0;
  return n;
}
static_assert(member_count<ModelConfig>() == fields_in("model"), "[model]: table != ModelConfig");
static_assert(member_count<MoEConfig>() == fields_in("moe"), "[moe]: table != MoEConfig");
static_assert(member_count<ParallelConfig>() == fields_in("parallel"), "[parallel] incomplete");
static_assert(member_count<TrainConfig>() == fields_in("train"), "[train]: table incomplete");
static_assert(member_count<OptimConfig>() == fields_in("optim"), "[optim]: table incomplete");
static_assert(member_count<DataConfig>() == fields_in("data"), "[data]: table incomplete");
static_assert(member_count<CheckpointConfig>() == fields_in("checkpoint"), "[checkpoint]");
static_assert(member_count<LogConfig>() == fields_in("log"), "[log]: table incomplete");
static_assert(member_count<EvalConfig>() == fields_in("eval"), "[eval]: table incomplete");
// [rl] nests: the distinct next key segments under a prefix ("" = the top level, "hapo." = the
// members of RlHapoConfig) are the members of the struct at that path.
consteval std::size_t rl_segments(std::string_view prefix) {
  std::array<std::string_view, 128> seen{};
  std::size_t n = 0;
  for (const ConfigField& f : kFields) {
    if (f.section != "rl" || !f.key.starts_with(prefix)) continue;
    std::string_view rest = f.key.substr(prefix.size());
    rest = rest.substr(0, rest.find('.'));
    bool known = false;
    for (std::size_t i = 0; i < n; ++i) known = known || seen[i] == rest;
    if (!known) seen[n++] = rest;
  }
  return n;
}
static_assert(member_count<rl::RlConfig>() == rl_segments(""), "[rl]: table != RlConfig");
static_assert(member_count<rl::RlRolloutConfig>() == rl_segments("rollout."), "[rl] rollout.*");
static_assert(member_count<rl::RlAdvantageConfig>() == rl_segments("advantage."), "[rl] advantage.*");
static_assert(member_count<rl::RlLossConfig>() == rl_segments("loss."), "[rl] loss.*");
static_assert(member_count<rl::RlRewardConfig>() == rl_segments("reward."), "[rl] reward.*");
static_assert(member_count<rl::RlOverlongConfig>() == rl_segments("reward.overlong."), "[rl] overlong");
static_assert(member_count<rl::RlDapoConfig>() == rl_segments("dapo."), "[rl] dapo.*");
static_assert(member_count<rl::RlDynamicSamplingConfig>() == rl_segments("dynamic_sampling."), "[rl] ds");
static_assert(member_count<rl::RlHapoConfig>() == rl_segments("hapo."), "[rl] hapo.*");
static_assert(member_count<rl::RlAtsConfig>() == rl_segments("hapo.ats."), "[rl] hapo.ats.*");
static_assert(member_count<rl::RlDarConfig>() == rl_segments("hapo.dar."), "[rl] hapo.dar.*");
static_assert(member_count<rl::RlAacConfig>() == rl_segments("hapo.aac."), "[rl] hapo.aac.*");
// optim.betas is one key for the two members beta1, beta2.
static_assert(member_count<rl::RlOptimConfig>() == rl_segments("optim.") + 1, "[rl] optim.*");
static_assert(member_count<rl::RlEvalConfig>() == rl_segments("eval."), "[rl] eval.*");
static_assert(member_count<rl::RlRouterReplayConfig>() == rl_segments("router_replay."), "[rl] replay");
static_assert(member_count<Config>() == 10, "Config gained a section: add it to the table");

std::string quote(const std::string& s) {
  std::string out = "\"";
  for (const char ch : s) {
    const auto u = static_cast<unsigned char>(ch);
    switch (ch) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (u < 0x20 || u == 0x7f)
          out += fmt::format("\\u{:04x}", u);
        else
          out += ch;
    }
  }
  return out + "\"";
}

// Shortest text that reads back to the same double, always a TOML float.
std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string fmt_one(int v) {
  return fmt::format("{}", v);
}
std::string fmt_one(double v) {
  return format_double(v);
}
std::string fmt_one(const std::string& v) {
  return quote(v);
}

template <typename T>
std::string fmt_list(const std::vector<T>& v, bool scalar_as_list) {
  if (scalar_as_list && v.size() == 1) return fmt_one(v[0]);
  std::string out = "[";
  for (std::size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + fmt_one(v[i]);
  return out + "]";
}

}  // namespace

std::string ConfigField::flag() const {
  return fmt::format("--{}.{}", section, key);
}

std::span<const ConfigField> config_fields() {
  return kFields;
}

std::vector<std::string_view> config_sections() {
  std::vector<std::string_view> out;
  for (const ConfigField& f : kFields)
    if (out.empty() || out.back() != f.section) out.push_back(f.section);
  return out;
}

const ConfigField* find_config_field(std::string_view section, std::string_view key) {
  for (const ConfigField& f : kFields)
    if (f.section == section && f.key == key) return &f;
  return nullptr;
}

std::string field_type_name(const ConfigField& f) {
  switch (f.type) {
    case FieldType::Int:
      return "integer";
    case FieldType::Int64:
      return "integer (64-bit)";
    case FieldType::Double:
      return "float";
    case FieldType::Bool:
      return "bool";
    case FieldType::String:
      return "string";
    case FieldType::OptDouble:
      return "float or none";
    case FieldType::OptInt:
      return "integer or none";
    case FieldType::IntList:
      return "list of integers";
    case FieldType::DoubleList:
      return "list of floats";
    case FieldType::StringList:
      return "list of strings";
    case FieldType::DoublePair:
      return "two floats";
    case FieldType::Enum:
      return std::get<ConstEnumRef>(f.cref(Config{})).codec->choices();
  }
  return "?";
}

std::string field_value_toml(const ConfigField& f, const Config& c) {
  return std::visit(
      [&](const auto& p) -> std::string {
        using P = std::remove_cvref_t<decltype(p)>;
        if constexpr (std::is_same_v<P, ConstEnumRef>) {
          return quote(std::string(p.codec->print(p.value)));
        } else if constexpr (std::is_same_v<P, ConstDoublePairRef>) {
          return fmt::format("[{}, {}]", format_double(*p.first), format_double(*p.second));
        } else {
          using T = std::remove_cvref_t<decltype(*p)>;
          if constexpr (std::is_same_v<T, int> || std::is_same_v<T, int64_t>) {
            return fmt::format("{}", *p);
          } else if constexpr (std::is_same_v<T, double>) {
            return format_double(*p);
          } else if constexpr (std::is_same_v<T, bool>) {
            return *p ? "true" : "false";
          } else if constexpr (std::is_same_v<T, std::string>) {
            return quote(*p);
          } else if constexpr (std::is_same_v<T, std::optional<double>> || std::is_same_v<T, std::optional<int>>) {
            return p->has_value() ? fmt_one(**p) : std::string("none");
          } else {
            return fmt_list(*p, f.scalar_as_list);
          }
        }
      },
      f.cref(c));
}

std::string config_help() {
  const Config defaults;
  std::string out =
      "Configuration: TOML `[section] key = value` in the config file, or the flag\n"
      "`--section.key=value` (lists as [a,b] or a,b; optional keys accept none).\n";
  std::string_view section;
  for (const ConfigField& f : kFields) {
    if (f.section != section) {
      section = f.section;
      out += fmt::format("\n[{}]\n", section);
    }
    const std::string lhs = fmt::format("  {}=<{}>", f.flag(), field_type_name(f));
    out += fmt::format("{:<44} {} (default {})\n", lhs, f.help, field_value_toml(f, defaults));
  }
  return out;
}

}  // namespace foldmoe
