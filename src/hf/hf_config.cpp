#include "hf/hf_config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/config_fields.h"
#include "config/flag_reader.h"
#include "core/check.h"

namespace foldmoe::hf {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const std::set<std::string> kMoeTypes = {"mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};

// Keys that describe the file, the tokenizer or inference settings: none changes the model's math.
const std::set<std::string> kNoMathKeys = {"architectures",
                                           "model_type",
                                           "transformers_version",
                                           "torch_dtype",
                                           "dtype",
                                           "_name_or_path",
                                           "use_cache",
                                           "bos_token_id",
                                           "eos_token_id",
                                           "pad_token_id",
                                           "output_router_logits",
                                           "pretraining_tp",
                                           "max_window_layers",
                                           "return_dict",
                                           "output_hidden_states",
                                           "output_attentions",
                                           "torchscript",
                                           "use_bfloat16",
                                           "tie_encoder_decoder",
                                           "is_encoder_decoder",
                                           "is_decoder",
                                           "add_cross_attention",
                                           "chunk_size_feed_forward",
                                           "id2label",
                                           "label2id",
                                           "problem_type",
                                           "tokenizer_class",
                                           "prefix",
                                           "sep_token_id",
                                           "decoder_start_token_id",
                                           "task_specific_params",
                                           "finetuning_task",
                                           "cross_attention_hidden_size",
                                           "tf_legacy_loss",
                                           "use_mrope",
                                           "num_labels"};

[[noreturn]] void refuse(const std::string& dir, const std::string& key, const std::string& why) {
  user_error("hf error H2: {}/config.json: key '{}' {}; foldmoe cannot load this model faithfully, so it refuses it",
             dir, key, why);
}

std::string num(double v) {
  return fmt::format("{}", v);
}

// A key of config.json read with a default for configs that omit it.
json get(const json& j, const std::string& key, const json& fallback) {
  return j.contains(key) && !j[key].is_null() ? j[key] : fallback;
}

}  // namespace

const std::vector<std::string>& supported_model_types() {
  static const std::vector<std::string> t = {"llama", "qwen2", "qwen3", "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};
  return t;
}

bool is_hf_directory(const std::string& dir) {
  std::error_code ec;
  return !dir.empty() && fs::is_directory(dir, ec) && fs::is_regular_file(fs::path(dir) / "config.json", ec);
}

HfModelConfig read_hf_config(const std::string& dir) {
  HfModelConfig out;
  out.dir = dir;
  const std::string path = (fs::path(dir) / "config.json").string();
  std::ifstream in(path);
  if (!in) user_error("hf error H1: cannot read '{}': a Hugging Face model directory holds a config.json", path);
  std::stringstream text;
  text << in.rdbuf();
  try {
    out.json = json::parse(text.str());
  } catch (const json::exception& e) {
    user_error("hf error H1: '{}' is not valid JSON ({}); restore the file", path, e.what());
  }
  const json& j = out.json;
  if (!j.is_object() || !j.contains("model_type") || !j["model_type"].is_string())
    user_error("hf error H2: '{}' has no \"model_type\" string; foldmoe reads model types {}", path,
               fmt::join(supported_model_types(), ", "));
  const std::string mt = out.model_type = j["model_type"].get<std::string>();
  if (std::find(supported_model_types().begin(), supported_model_types().end(), mt) == supported_model_types().end())
    user_error(
        "hf error H2: {}: model_type '{}' is not one foldmoe implements (it reads {}); convert a model of one "
        "of these architectures",
        path, mt, fmt::join(supported_model_types(), ", "));
  const bool moe = kMoeTypes.count(mt) > 0;
  std::vector<std::string>& o = out.overrides;
  std::set<std::string> used;  // config.json keys consumed by the mapping
  const auto need = [&](const std::string& key) -> json {
    used.insert(key);
    if (!j.contains(key) || j[key].is_null() || !j[key].is_number())
      user_error("hf error H2: {}: key '{}' is missing or not a number; it fixes the model's shape", path, key);
    return j[key];
  };
  const auto opt = [&](const std::string& key, const json& fallback) {
    used.insert(key);
    return get(j, key, fallback);
  };
  const auto set = [&](const std::string& key, const std::string& value) { o.push_back("--" + key + "=" + value); };
  // Keys of features added with the HF architectures: set only where the build knows them, or where
  // the model needs them (then an unknown key fails loudly in apply_overrides).
  const auto set_feature = [&](const std::string& key, const std::string& value, bool is_default) {
    const size_t dot = key.find('.');
    if (is_default && !find_config_field(key.substr(0, dot), key.substr(dot + 1))) return;
    set(key, value);
  };

  const int hidden = need("hidden_size").get<int>();
  const int heads = need("num_attention_heads").get<int>();
  const int layers = need("num_hidden_layers").get<int>();
  set("model.hidden", std::to_string(hidden));
  set("model.heads", std::to_string(heads));
  set("model.layers", std::to_string(layers));
  set("model.kv_heads", std::to_string(opt("num_key_value_heads", heads).get<int>()));
  set("model.head_dim", std::to_string(opt("head_dim", heads > 0 ? hidden / heads : 0).get<int>()));
  set("model.ffn", std::to_string(need("intermediate_size").get<int>()));
  set("model.vocab", std::to_string(need("vocab_size").get<int>()));
  set("model.norm_eps", num(opt("rms_norm_eps", 1e-6).get<double>()));
  set("model.rope_theta", num(opt("rope_theta", mt == "mixtral" ? 1e6 : 10000.0).get<double>()));
  set("model.max_seq_len", std::to_string(opt("max_position_embeddings", 2048).get<int>()));
  set("model.init_std", num(opt("initializer_range", 0.02).get<double>()));
  const bool tie = opt("tie_word_embeddings", false).get<bool>();
  set_feature("model.tie_embeddings", tie ? "true" : "false", !tie);

  // Attention: biases and QK-norm.
  bool bias = false;
  if (mt == "qwen2")
    bias = true;  // Qwen2 always has q/k/v biases
  else if (mt == "qwen2_moe")
    bias = opt("qkv_bias", true).get<bool>();
  else
    bias = opt("attention_bias", false).get<bool>();
  set_feature("model.attention_bias", bias ? "true" : "false", !bias);
  const std::string qk = mt == "qwen3" || mt == "qwen3_moe" ? "head" : mt == "olmoe" ? "full" : "none";
  set_feature("model.qk_norm", qk, qk == "none");

  // RoPE scaling.
  const json rs = opt("rope_scaling", json());
  if (!rs.is_null()) {
    if (!rs.is_object()) refuse(dir, "rope_scaling", "is not an object");
    const std::string type = get(rs, "rope_type", get(rs, "type", "default")).get<std::string>();
    std::set<std::string> known = {"rope_type", "type"};
    const auto rsv = [&](const std::string& k, double fallback) {
      known.insert(k);
      const json v = get(rs, k, fallback);
      if (!v.is_number()) refuse(dir, "rope_scaling." + k, "is not a number");
      return v.get<double>();
    };
    if (type == "default") {
      set_feature("model.rope_scaling", "none", true);
    } else if (type == "linear" || type == "llama3" || type == "yarn") {
      set("model.rope_scaling", type);
      const double factor = rsv("factor", 1.0);
      set("model.rope_scaling_factor", num(factor));
      if (type == "llama3") {
        set("model.rope_low_freq_factor", num(rsv("low_freq_factor", 1.0)));
        set("model.rope_high_freq_factor", num(rsv("high_freq_factor", 4.0)));
        set("model.rope_original_max_position",
            std::to_string(std::lround(rsv("original_max_position_embeddings", 8192))));
      } else if (type == "yarn") {
        const double max_pos = opt("max_position_embeddings", 2048).get<double>();
        const double orig = rsv("original_max_position_embeddings", 0);
        set("model.rope_original_max_position", std::to_string(std::lround(orig > 0 ? orig : max_pos)));
        const double fast = rsv("beta_fast", 0), slow = rsv("beta_slow", 0);
        set("model.rope_beta_fast", num(fast != 0 ? fast : 32));  // transformers treats 0 as unset
        set("model.rope_beta_slow", num(slow != 0 ? slow : 1));
        // The attention factor as transformers computes it (_compute_yarn_parameters).
        const auto mscale_of = [](double scale, double m) {
          return scale <= 1 ? 1.0 : 0.1 * m * std::log(scale) + 1.0;
        };
        double att = rsv("attention_factor", 0);
        const double ms = rsv("mscale", 0), msa = rsv("mscale_all_dim", 0);
        if (!rs.contains("attention_factor") || rs["attention_factor"].is_null())
          att = ms != 0 && msa != 0 ? mscale_of(factor, ms) / mscale_of(factor, msa) : mscale_of(factor, 1);
        set("model.rope_attention_factor", num(att));
        known.insert("truncate");
        if (rs.contains("truncate") && !get(rs, "truncate", true).get<bool>())
          refuse(dir, "rope_scaling.truncate", "is false; foldmoe's YaRN always rounds the correction range");
      }
    } else {
      refuse(dir, "rope_scaling", fmt::format("has type '{}'; foldmoe implements linear, llama3 and yarn", type));
    }
    for (const auto& [k, v] : rs.items())
      if (!known.count(k))
        refuse(dir, "rope_scaling." + k, fmt::format("(= {}) is not a parameter foldmoe implements", v.dump()));
  }

  // Mixture of experts.
  if (!moe) {
    set("moe.num_experts", "0");
  } else {
    const int experts = need(mt == "mixtral" ? "num_local_experts" : "num_experts").get<int>();
    set("moe.num_experts", std::to_string(experts));
    set("moe.topk", std::to_string(need("num_experts_per_tok").get<int>()));
    set("moe.ffn_hidden_size",
        std::to_string(mt == "qwen2_moe" || mt == "qwen3_moe" ? need("moe_intermediate_size").get<int>()
                                                              : j.at("intermediate_size").get<int>()));
    // Mixtral always renormalises the top-k probabilities; the others say so with norm_topk_prob.
    const bool norm_topk = mt == "mixtral" ? true : opt("norm_topk_prob", false).get<bool>();
    set("moe.pre_softmax", norm_topk ? "false" : "true");
    set("moe.score_function", "softmax");
    set("moe.router_bias", "false");
    set("moe.enable_expert_bias", "false");
    set("moe.topk_scaling_factor", "none");
    set("moe.num_groups", "none");
    set("moe.group_topk", "none");
    set("moe.aux_loss_coeff", num(opt("router_aux_loss_coef", 0.001).get<double>()));
    set("moe.load_balancing_type", "aux_loss");
    const double jitter = mt == "mixtral" ? opt("router_jitter_noise", 0.0).get<double>() : 0.0;
    set("moe.input_jitter_eps", jitter > 0 ? num(jitter) : "none");
    // Which layers are sparse: Qwen's decoder_sparse_step and mlp_only_layers; all for the others.
    std::vector<int> freq(size_t(layers), 1);
    if (mt == "qwen2_moe" || mt == "qwen3_moe") {
      const int step = opt("decoder_sparse_step", 1).get<int>();
      const json only = opt("mlp_only_layers", json::array());
      if (step < 1) refuse(dir, "decoder_sparse_step", fmt::format("is {}; it must be at least 1", step));
      for (int l = 0; l < layers; ++l) freq[size_t(l)] = (l + 1) % step == 0 ? 1 : 0;
      for (const json& l : only) {
        if (!l.is_number_integer() || l.get<int>() < 0 || l.get<int>() >= layers)
          refuse(dir, "mlp_only_layers", fmt::format("names layer {}, which the model does not have", l.dump()));
        freq[size_t(l.get<int>())] = 0;
      }
    }
    set("moe.layer_freq", fmt::format("[{}]", fmt::join(freq, ",")));
    if (mt == "qwen2_moe") {
      set("moe.shared_expert_ffn_hidden_size", std::to_string(need("shared_expert_intermediate_size").get<int>()));
      set("moe.shared_expert_gate", "true");
    } else {
      set("moe.shared_expert_ffn_hidden_size", "0");
      set("moe.shared_expert_gate", "false");
    }
  }

  // Keys whose only accepted values are those of the math foldmoe implements.
  const auto must_be = [&](const std::string& key, const json& ok, const std::string& why) {
    used.insert(key);
    if (j.contains(key) && j[key] != ok) refuse(dir, key, fmt::format("is {}: {}", j[key].dump(), why));
  };
  must_be("hidden_act", "silu", "foldmoe's MLPs are SwiGLU (silu)");
  must_be("mlp_bias", false, "foldmoe's MLP projections have no bias");
  must_be("attention_dropout", 0.0, "foldmoe has no attention dropout");
  must_be("clip_qkv", json(), "foldmoe does not clip q/k/v");
  must_be("partial_rotary_factor", 1.0, "foldmoe rotates the whole head");
  must_be("router_jitter_noise", mt == "mixtral" ? get(j, "router_jitter_noise", 0.0) : json(0.0),
          "this architecture has no router jitter");
  used.insert("use_sliding_window");
  used.insert("sliding_window");
  used.insert("layer_types");
  const bool window_flag = get(j, "use_sliding_window", mt == "mixtral").get<bool>();
  if (window_flag && !get(j, "sliding_window", json()).is_null())
    refuse(dir, "sliding_window",
           fmt::format("is {} and in use; foldmoe implements full attention only", j["sliding_window"].dump()));
  if (j.contains("layer_types") && j["layer_types"].is_array())
    for (const json& t : j["layer_types"])
      if (t != "full_attention")
        refuse(dir, "layer_types", fmt::format("contains {}; foldmoe implements full attention only", t.dump()));
  for (const char* k : {"kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "v_head_dim", "qk_nope_head_dim"})
    if (j.contains(k)) refuse(dir, k, "is a multi-head latent attention (MLA) key; foldmoe implements GQA only");
  for (const char* k : {"quantization_config", "auto_map"})
    if (j.contains(k)) refuse(dir, k, "needs code foldmoe does not have (quantised weights or remote model code)");
  for (const auto& [k, v] : j.items())
    if (!used.count(k) && !kNoMathKeys.count(k))
      refuse(dir, k,
             fmt::format("(= {}) is not a {} setting foldmoe knows; without it the model may differ", v.dump(), mt));
  return out;
}

Config apply_hf_config(const Config& user, const HfModelConfig& hf) {
  // Keys of training, not of the weights' math: the directory's value is only a default that a
  // configuration may change (a fine-tune's own aux-loss weight, a shorter context).
  static const std::set<std::string> kTrainingKeys = {"model.init_std", "model.max_seq_len", "moe.aux_loss_coeff",
                                                      "moe.load_balancing_type", "moe.input_jitter_eps"};
  const Config defaults;
  std::vector<std::string> overrides;
  for (const std::string& flag : hf.overrides) {
    const size_t dot = flag.find('.'), eq = flag.find('=');
    const std::string section = flag.substr(2, dot - 2), key = flag.substr(dot + 1, eq - dot - 1);
    const ConfigField* f = find_config_field(section, key);
    const bool user_set = f && field_value_toml(*f, user) != field_value_toml(*f, defaults);
    if (!(user_set && kTrainingKeys.count(section + "." + key))) overrides.push_back(flag);
  }
  Config out = user;
  apply_overrides(out, overrides);
  std::vector<std::string> clashes;
  for (const std::string& flag : overrides) {
    const size_t dot = flag.find('.'), eq = flag.find('=');
    const std::string section = flag.substr(2, dot - 2), key = flag.substr(dot + 1, eq - dot - 1);
    const ConfigField* f = find_config_field(section, key);
    const std::string mine = field_value_toml(*f, user), builtin = field_value_toml(*f, defaults),
                      theirs = field_value_toml(*f, out);
    if (mine != builtin && mine != theirs)
      clashes.push_back(
          fmt::format("{}.{} = {} in your configuration, {} in {}/config.json", section, key, mine, theirs, hf.dir));
  }
  if (!clashes.empty())
    user_error(
        "hf error H5: the configuration disagrees with the Hugging Face model it loads:\n  {}\n  fix: drop these "
        "keys from the configuration (the model directory fixes them)",
        fmt::join(clashes, "\n  "));
  if (out.data.tokenizer == defaults.data.tokenizer && out.data.source == "indexed" &&
      fs::exists(fs::path(hf.dir) / "tokenizer.json"))
    out.data.tokenizer = hf.dir;
  return out;
}

}  // namespace foldmoe::hf
