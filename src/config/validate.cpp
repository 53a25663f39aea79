// The value rules of every section (V1–V4, A1–A3, A6, T1–T2, M1–M14) and the world-independent
// layout rules (config/layout_rules.cpp).
#include "config/validate.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "config/config_fields.h"
#include "config/data_rules.h"
#include "config/layout_rules.h"
#include "config/size_rules.h"

namespace foldmoe {
namespace {

bool one_of(const std::string& v, std::initializer_list<std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

std::string join(std::initializer_list<std::string_view> xs, std::string_view sep = " | ") {
  std::string out;
  for (std::string_view x : xs) out += fmt::format("{}{}", out.empty() ? "" : sep, x);
  return out;
}

template <typename T>
std::string list_text(const std::vector<T>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

// V3: a string key that must be one of a fixed set.
void check_choice(Problems& p, std::string_view key, const std::string& v,
                  std::initializer_list<std::string_view> allowed, std::string_view id = "V3") {
  if (!one_of(v, allowed))
    p.add(id, fmt::format("{} = \"{}\" is not one of {}.", key, v, join(allowed)),
          fmt::format("set {} to one of {}.", key, join(allowed)));
}

// V1: numeric ranges. `key` is "[section] name".
// Non-finite floats are V2's alone.
template <typename T>
bool finite(T v) {
  if constexpr (std::is_floating_point_v<T>)
    return std::isfinite(v);
  else
    return true;
}
template <typename T>
void at_least(Problems& p, std::string_view key, T v, T min, std::string fix) {
  if (finite(v) && !(v >= min)) p.add("V1", fmt::format("{} = {} must be >= {}.", key, v, min), std::move(fix));
}
template <typename T>
void positive(Problems& p, std::string_view key, T v, std::string fix) {
  if (finite(v) && !(v > 0)) p.add("V1", fmt::format("{} = {} must be > 0.", key, v), std::move(fix));
}

// V2: every float of every section is finite (inf or nan cannot train, and a dump of them would
// not read back as the same run).
void finite_rules(const Config& c, Problems& p) {
  for (const ConfigField& f : config_fields()) {
    std::vector<double> values;
    std::visit(
        [&](const auto& r) {
          using R = std::remove_cvref_t<decltype(r)>;
          if constexpr (std::is_same_v<R, const double*>)
            values.push_back(*r);
          else if constexpr (std::is_same_v<R, const std::optional<double>*>) {
            if (r->has_value()) values.push_back(**r);
          } else if constexpr (std::is_same_v<R, const std::vector<double>*>)
            values = *r;
          else if constexpr (std::is_same_v<R, ConstDoublePairRef>)
            values = {*r.first, *r.second};
        },
        f.cref(c));
    for (double v : values)
      if (!std::isfinite(v)) {
        p.add("V2", fmt::format("[{}] {} = {} is not a finite number.", f.section, f.key, field_value_toml(f, c)),
              fmt::format("set {} to a finite value (default {}).", f.flag(), field_value_toml(f, Config{})));
        break;
      }
  }
}

// A6: the parameters of [model] rope_scaling (transformers' rope_scaling dictionary).
void rope_scaling_rules(const ModelConfig& m, Problems& p) {
  check_choice(p, "[model] rope_scaling", m.rope_scaling, {"none", "linear", "llama3", "yarn"});
  if (m.rope_attention_factor && m.rope_scaling != "yarn")
    p.add("A6",
          fmt::format("[model] rope_attention_factor = {} is used only by rope_scaling = \"yarn\", not \"{}\".",
                      *m.rope_attention_factor, m.rope_scaling),
          "remove rope_attention_factor, or set rope_scaling = \"yarn\".");
  if (m.rope_scaling == "none") return;
  if (std::isfinite(m.rope_scaling_factor) && !(m.rope_scaling_factor >= 1.0))
    p.add("A6",
          fmt::format("[model] rope_scaling_factor = {} must be >= 1 with rope_scaling = \"{}\".",
                      m.rope_scaling_factor, m.rope_scaling),
          "set rope_scaling_factor to the context extension ratio (>= 1), or rope_scaling = \"none\".");
  if ((m.rope_scaling == "llama3" || m.rope_scaling == "yarn") && m.rope_original_max_position < 1)
    p.add("A6",
          fmt::format("[model] rope_scaling = \"{}\" needs rope_original_max_position (the pre-trained context "
                      "length), got {}.",
                      m.rope_scaling, m.rope_original_max_position),
          "set [model] rope_original_max_position, e.g. 8192 (transformers' original_max_position_embeddings).");
  if (m.rope_scaling == "llama3" && !(m.rope_low_freq_factor > 0 && m.rope_high_freq_factor > m.rope_low_freq_factor))
    p.add("A6",
          fmt::format("[model] rope_low_freq_factor = {} and rope_high_freq_factor = {} must satisfy 0 < low < high.",
                      m.rope_low_freq_factor, m.rope_high_freq_factor),
          "use Llama 3's low_freq_factor = 1.0 and high_freq_factor = 4.0.");
  if (m.rope_scaling == "yarn") {
    if (!(m.rope_beta_slow > 0 && m.rope_beta_fast > m.rope_beta_slow))
      p.add("A6",
            fmt::format("[model] rope_beta_fast = {} and rope_beta_slow = {} must satisfy 0 < beta_slow < beta_fast.",
                        m.rope_beta_fast, m.rope_beta_slow),
            "use yarn's beta_fast = 32.0 and beta_slow = 1.0.");
    if (m.rope_attention_factor && !(*m.rope_attention_factor > 0))
      p.add("A6", fmt::format("[model] rope_attention_factor = {} must be > 0.", *m.rope_attention_factor),
            "remove the key (transformers' default 0.1 ln(factor) + 1) or set a positive factor.");
  }
}

void model_rules(const Config& c, Problems& p) {
  const ModelConfig& m = c.model;
  const auto positive_int = [&](std::string_view key, int v) {
    positive(p, fmt::format("[model] {}", key), v, fmt::format("set [model] {} to a positive integer.", key));
  };
  positive_int("layers", m.layers);
  positive_int("hidden", m.hidden);
  positive_int("heads", m.heads);
  positive_int("kv_heads", m.kv_heads);
  positive_int("ffn", m.ffn);
  at_least(p, "[model] vocab", m.vocab, 0, "set [model] vocab = 0 to use the data's vocabulary size.");
  at_least(p, "[model] head_dim", m.head_dim, 0, "set [model] head_dim = 0 to use hidden / heads.");
  if (m.heads > 0 && m.kv_heads > 0 && m.heads % m.kv_heads != 0)
    p.add("A1",
          fmt::format("[model] heads = {} is not divisible by kv_heads = {} (each KV head serves heads / kv_heads "
                      "query heads).",
                      m.heads, m.kv_heads),
          fmt::format("set kv_heads to a divisor of {} (e.g. {} or 1).", m.heads, m.heads));
  if (m.head_dim == 0 && m.heads > 0 && m.hidden > 0 && m.hidden % m.heads != 0)
    p.add("A2",
          fmt::format("[model] hidden = {} is not divisible by heads = {} and head_dim is not set.", m.hidden, m.heads),
          "choose heads dividing hidden, or set [model] head_dim explicitly.");
  if (m.heads > 0 && m.head_dim >= 0 && (m.head_dim > 0 || m.hidden % m.heads == 0)) {
    const int hd = c.head_dim();
    if (hd <= 0 || hd % 2 != 0)
      p.add("A3",
            fmt::format("head dimension {} ([model] head_dim = {}, hidden = {}, heads = {}) must be even and > 0 for "
                        "RoPE.",
                        hd, m.head_dim, m.hidden, m.heads),
            "set [model] head_dim to an even number, or pick hidden / heads even.");
  }
  positive(p, "[model] rope_theta", m.rope_theta, "use the default rope_theta = 10000.0.");
  positive(p, "[model] norm_eps", m.norm_eps, "use e.g. norm_eps = 1e-5.");
  positive(p, "[model] init_std", m.init_std, "use e.g. init_std = 0.02.");
  check_choice(p, "[model] qk_norm", m.qk_norm, {"none", "head", "full"});
  rope_scaling_rules(m, p);
}

void moe_rules(const Config& c, Problems& p) {
  const MoEConfig& e = c.moe;
  const int E = e.num_experts, k = e.topk, L = c.model.layers;
  if (E < 0) {
    p.add("V1", fmt::format("[moe] num_experts = {} must be >= 0.", E),
          "set num_experts = 0 for a dense model or to the number of experts.");
    return;
  }
  // layer_freq (L15) is checked for dense models too: the key is then unused but must still parse.
  if (e.layer_freq.empty()) {
    p.add("L15", "[moe] layer_freq = [] is empty.",
          "set layer_freq = 1 (every layer MoE), an integer f, or a list of L entries 0/1.");
  } else if (e.layer_freq.size() == 1) {
    if (e.layer_freq[0] < 1)
      p.add("L15",
            fmt::format("[moe] layer_freq = {} must be >= 1 (layer i is MoE iff i mod layer_freq == 0).",
                        e.layer_freq[0]),
            "set layer_freq = 1 for all MoE layers, or num_experts = 0 for a dense model.");
  } else {
    if (L > 0 && e.layer_freq.size() != size_t(L))
      p.add("L15", fmt::format("[moe] layer_freq has {} entries but [model] layers = {}.", e.layer_freq.size(), L),
            fmt::format("give exactly {} entries of 0/1, or a single integer frequency.", L));
    for (int v : e.layer_freq)
      if (v != 0 && v != 1) {
        p.add("L15",
              fmt::format("[moe] layer_freq = {} has entry {}; a list must hold only 0 and 1.", list_text(e.layer_freq),
                          v),
              "use 1 for an MoE layer and 0 for a dense layer, or a single integer frequency.");
        break;
      }
  }
  at_least(p, "[moe] ffn_hidden_size", e.ffn_hidden_size, 0, "set ffn_hidden_size = 0 to use [model] ffn.");
  at_least(p, "[moe] shared_expert_ffn_hidden_size", e.shared_expert_ffn_hidden_size, 0,
           "set it to 0 for no shared expert.");
  if (E == 0) return;  // dense model: the remaining [moe] keys are unused

  if (k < 1 || k > E)
    p.add("M1", fmt::format("[moe] topk = {} must satisfy 1 <= topk <= num_experts = {}.", k, E),
          fmt::format("set topk between 1 and {}, or raise num_experts.", E));
  check_choice(p, "[moe] score_function", e.score_function, {"softmax", "sigmoid"});
  check_choice(p, "[moe] dispatcher", e.dispatcher, {"alltoall", "allgather"});
  if (e.topk_scaling_factor && !(*e.topk_scaling_factor > 0))
    p.add("V1", fmt::format("[moe] topk_scaling_factor = {} must be > 0.", *e.topk_scaling_factor),
          "remove the key (factor 1) or set a positive factor.");
  // M3 group-limited routing
  if (e.num_groups.has_value() != e.group_topk.has_value()) {
    p.add("M3",
          fmt::format("group routing needs both [moe] num_groups and group_topk; got num_groups = {}, group_topk = {}.",
                      e.num_groups ? fmt::format("{}", *e.num_groups) : "none",
                      e.group_topk ? fmt::format("{}", *e.group_topk) : "none"),
          "set both keys (e.g. num_groups = ep, group_topk = 1) or neither.");
  } else if (e.num_groups) {
    const int G = *e.num_groups, g = *e.group_topk;
    if (G < 1 || E % G != 0)
      p.add("M3", fmt::format("[moe] num_groups = {} must be >= 1 and divide num_experts = {}.", G, E),
            "choose num_groups dividing num_experts (e.g. the EP size).");
    else if (g < 1 || g > G)
      p.add("M3", fmt::format("[moe] group_topk = {} must satisfy 1 <= group_topk <= num_groups = {}.", g, G),
            fmt::format("set group_topk between 1 and {}.", G));
    else if (k < g || k > g * (E / G))
      p.add("M3",
            fmt::format(
                "[moe] topk = {} must satisfy group_topk = {} <= topk <= group_topk * num_experts / num_groups = {}.",
                k, g, g * (E / G)),
            "lower group_topk, or change topk / num_groups.");
  }
  if (e.enable_expert_bias && e.score_function != "sigmoid")
    p.add("M4",
          fmt::format("[moe] enable_expert_bias = true requires score_function = \"sigmoid\", got \"{}\".",
                      e.score_function),
          "set score_function = \"sigmoid\" or enable_expert_bias = false.");
  at_least(p, "[moe] bias_update_rate", e.bias_update_rate, 0.0, "use e.g. bias_update_rate = 1e-3.");
  if (e.input_jitter_eps && !(*e.input_jitter_eps >= 0 && *e.input_jitter_eps < 1))
    p.add("V1", fmt::format("[moe] input_jitter_eps = {} must satisfy 0 <= eps < 1.", *e.input_jitter_eps),
          "remove the key or use a small value such as 0.01.");
  if (e.z_loss_coeff && !(*e.z_loss_coeff >= 0))
    p.add("V1", fmt::format("[moe] z_loss_coeff = {} must be >= 0.", *e.z_loss_coeff),
          "remove the key (\"none\") or set a non-negative coefficient such as 1e-3.");
  // M8 load balancing lists
  const auto& types = e.load_balancing_type;
  const auto& coeffs = e.aux_loss_coeff;
  if (types.size() != coeffs.size())
    p.add("M8",
          fmt::format("[moe] load_balancing_type has {} entries {} but aux_loss_coeff has {} {}.", types.size(),
                      list_text(types), coeffs.size(), list_text(coeffs)),
          "give one coefficient per load-balancing type.");
  std::set<std::string> seen;
  for (const std::string& t : types) {
    if (!one_of(t, {"aux_loss", "seq_aux_loss", "global_aux_loss", "none"}))
      p.add("M8", fmt::format("[moe] load_balancing_type entry \"{}\" is unknown.", t),
            "use aux_loss, seq_aux_loss, global_aux_loss or none.");
    if (!seen.insert(t).second)
      p.add("M8", fmt::format("[moe] load_balancing_type = {} lists \"{}\" twice.", list_text(types), t),
            "list each type once.");
  }
  if (seen.count("none") && types.size() > 1)
    p.add("M8", fmt::format("[moe] load_balancing_type = {} combines \"none\" with other types.", list_text(types)),
          "use [\"none\"] alone, or drop \"none\".");
  for (double a : coeffs)
    if (!(a >= 0)) {
      p.add("M8", fmt::format("[moe] aux_loss_coeff = {} has a negative entry {}.", list_text(coeffs), a),
            "use coefficients >= 0.");
      break;
    }
  // M13: a capacity of zero tokens per expert would drop every token.
  if (e.capacity_factor && *e.capacity_factor == 0)
    p.add("M13", "[moe] capacity_factor = 0 gives every expert a capacity of zero tokens (every token dropped).",
          "set capacity_factor > 0 (e.g. 1.0), or remove it (\"none\") for dropless routing.");
  const bool capacity = e.capacity_factor.has_value() && *e.capacity_factor > 0;
  if (e.pad_to_capacity && !capacity)
    p.add("M6",
          "[moe] pad_to_capacity = true requires a capacity_factor > 0 (dropless runs have no capacity to pad to).",
          "set capacity_factor (e.g. 1.0) or pad_to_capacity = false.");
  check_choice(p, "[moe] drop_policy", e.drop_policy, {"probs", "position"}, "M7");
  // M11 capacity_partition
  if (!e.capacity_partition.empty()) {
    const auto& cpp = e.capacity_partition;
    if (cpp.size() != 2 || cpp[0] < 1 || cpp[1] < 1) {
      p.add("M11", fmt::format("[moe] capacity_partition = {} must be [tp, cp] with both >= 1.", list_text(cpp)),
            "write e.g. capacity_partition = [2, 2], or remove the key.");
    } else {
      const int ptp = cpp[0], pcp = cpp[1], S = c.train.seq_len;
      if (c.parallel.tp != 1 || c.parallel.cp != 1)
        p.add("M11",
              fmt::format(
                  "[moe] capacity_partition = {} is a single-process test option but the run has tp = {}, cp = {}.",
                  list_text(cpp), c.parallel.tp, c.parallel.cp),
              "remove capacity_partition (a TP x CP run partitions itself) or run with tp = cp = 1.");
      if (S < 1) {
        // reported by V1 for seq_len
      } else if (pcp > 1 && S % (2 * pcp) != 0)
        p.add("M11",
              fmt::format("[moe] capacity_partition cp = {}: seq_len = {} is not divisible by 2*cp = {}.", pcp, S,
                          2 * pcp),
              fmt::format("use a seq_len that is a multiple of {}.", 2 * pcp));
      else if ((S / pcp) % ptp != 0)
        p.add("M11",
              fmt::format("[moe] capacity_partition = {}: seq_len / cp = {} is not divisible by tp = {}.",
                          list_text(cpp), S / pcp, ptp),
              fmt::format("use a seq_len that is a multiple of {}.", ptp * pcp * (pcp > 1 ? 2 : 1)));
    }
  }
  if (e.shared_expert_gate && e.shared_expert_ffn_hidden_size == 0)
    p.add("M14", "[moe] shared_expert_gate = true but shared_expert_ffn_hidden_size = 0 (no shared expert).",
          "set shared_expert_ffn_hidden_size > 0 or shared_expert_gate = false.");
}

void train_rules(const Config& c, Problems& p) {
  const TrainConfig& t = c.train;
  at_least(p, "[train] steps", t.steps, 0, "set a non-negative number of steps.");
  at_least(p, "[train] micro_batch", t.micro_batch, 1, "set micro_batch >= 1.");
  at_least(p, "[train] micro_batches", t.micro_batches, 1, "set micro_batches >= 1.");
  at_least(p, "[train] global_batch", t.global_batch, 0,
           "set global_batch = 0 (micro_batch x micro_batches x DP) or a positive multiple of micro_batch.");
  if (t.seq_len < 2)
    p.add("V1", fmt::format("[train] seq_len = {} must be >= 2 (next-token targets need two positions).", t.seq_len),
          "set seq_len >= 2.");
  if (t.run_dir.empty()) p.add("T2", "[train] run_dir is empty.", "set run_dir, e.g. \"runs/tiny-moe\".");
  check_choice(p, "[train] recompute", t.recompute, {"none", "moe", "full"});
  check_choice(p, "[train] precision", t.precision, {"fp32", "bf16"});
  at_least(p, "[parallel] bucket_size", c.parallel.bucket_size, int64_t(1),
           "set bucket_size = 40000000 (the default).");
  check_choice(p, "[parallel] cp_comm_type", c.parallel.cp_comm_type, {"p2p", "all_gather"});
  at_least(p, "[parallel] timeout_s", c.parallel.timeout_s, 0.0,
           "set timeout_s = 0 to switch the collective watchdog off, or a number of seconds such as 600.");

  const OptimConfig& o = c.optim;
  positive(p, "[optim] lr", o.lr, "use e.g. lr = 3e-3.");
  at_least(p, "[optim] min_lr", o.min_lr, 0.0, "use e.g. min_lr = lr / 10.");
  if (o.lr > 0 && o.min_lr > o.lr)
    p.add("T1", fmt::format("[optim] min_lr = {} must satisfy min_lr <= lr = {}.", o.min_lr, o.lr),
          "use e.g. min_lr = lr / 10.");
  at_least(p, "[optim] warmup_steps", o.warmup_steps, 0, "set warmup_steps = 0 for no warmup.");
  check_choice(p, "[optim] schedule", o.schedule, {"cosine", "constant"});
  at_least(p, "[optim] weight_decay", o.weight_decay, 0.0, "use e.g. weight_decay = 0.1.");
  if (!(o.beta1 >= 0 && o.beta1 < 1))
    p.add("V1", fmt::format("[optim] beta1 = {} must satisfy 0 <= beta1 < 1.", o.beta1), "use e.g. beta1 = 0.9.");
  if (!(o.beta2 >= 0 && o.beta2 < 1))
    p.add("V1", fmt::format("[optim] beta2 = {} must satisfy 0 <= beta2 < 1.", o.beta2), "use e.g. beta2 = 0.95.");
  positive(p, "[optim] eps", o.eps, "use e.g. eps = 1e-8.");
  at_least(p, "[optim] grad_clip", o.grad_clip, 0.0, "set grad_clip = 0 to disable clipping, or a positive norm.");

  const DataConfig& d = c.data;
  check_choice(p, "[data] source", d.source, {"synthetic", "indexed"});
  data_rules(c, p);
  if (d.tasks.empty())
    p.add("V4", "[data] tasks is empty.", "list at least one of add, reverse, sort, lookup, chain, word.");
  std::set<std::string> seen;
  for (const std::string& task : d.tasks) {
    if (!one_of(task, {"add", "reverse", "sort", "lookup", "chain", "word"}))
      p.add("V3", fmt::format("[data] tasks entry \"{}\" is not a synthetic task.", task),
            "use tasks from add, reverse, sort, lookup, chain, word.");
    else if (!seen.insert(task).second)
      p.add("V4", fmt::format("[data] tasks = {} lists \"{}\" twice.", list_text(d.tasks), task),
            "list each task once.");
  }
  at_least(p, "[data] eval_samples", d.eval_samples, 0, "set eval_samples >= 0.");
  at_least(p, "[checkpoint] interval", c.checkpoint.interval, 0, "set interval = 0 to save only at the end.");
  at_least(p, "[checkpoint] keep_last", c.checkpoint.keep_last, 0, "set keep_last = 0 to keep every checkpoint.");
  at_least(p, "[checkpoint] keep_every", c.checkpoint.keep_every, 0, "set keep_every = 0 to keep none forever.");
  at_least(p, "[train] skip_nonfinite_steps", c.train.skip_nonfinite_steps, 0,
           "set skip_nonfinite_steps = 0 to stop at the first non-finite step.");
  at_least(p, "[train] max_minutes", c.train.max_minutes, 0.0, "set max_minutes = 0 for no wall-clock budget.");
  for (const std::string& sig : c.train.exit_signals)
    check_choice(p, "[train] exit_signals entry", sig, {"SIGTERM", "SIGINT", "SIGUSR1", "SIGUSR2", "SIGHUP"});
  at_least(p, "[log] interval", c.log.interval, 1, "set [log] interval = 1 to print every step.");
  check_choice(p, "[log] progress", c.log.progress, {"auto", "on", "off"});
  at_least(p, "[log] profile_step", c.log.profile_step, 0, "set [log] profile_step = 0 (no trace) or N >= 1.");
}

}  // namespace

Problems config_problems(const Config& c) {
  Problems p;
  finite_rules(c, p);
  model_rules(c, p);
  moe_rules(c, p);
  size_rules(c, p);
  p.append(layout_problems_without_world(c));
  train_rules(c, p);
  return p;
}

void validate(const Config& c) {
  config_problems(c).raise("configuration errors");
}

}  // namespace foldmoe
