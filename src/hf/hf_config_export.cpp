// foldmoe model -> Hugging Face config.json (the inverse of read_hf_config for the keys that
// matter; values transformers would default are written anyway, so the file stands alone).
#include <cmath>

#include "config/config_fields.h"
#include "core/check.h"
#include "hf/hf_config.h"

namespace foldmoe::hf {

using nlohmann::json;

namespace {

// The value of a key added with the HF architectures as TOML text, or `fallback` when this build
// has no such key.
std::string feature(const Config& cfg, const char* key, const std::string& fallback) {
  const ConfigField* f = find_config_field("model", key);
  if (!f) return fallback;
  std::string v = field_value_toml(*f, cfg);
  if (v.size() >= 2 && v.front() == '"') v = v.substr(1, v.size() - 2);
  return v;
}
double feature_num(const Config& cfg, const char* key, double fallback) {
  const std::string v = feature(cfg, key, "");
  return v.empty() || v == "none" ? fallback : std::stod(v);
}

[[noreturn]] void cannot(const std::string& mt, const std::string& what) {
  user_error(
      "hf error H2: the model cannot be written as a Hugging Face '{}' model: {}; pick another --model-type or "
      "keep the model in foldmoe's format",
      mt, what);
}

}  // namespace

json hf_config_json(const Config& cfg, std::string mt, const std::string& torch_dtype) {
  const ModelConfig& m = cfg.model;
  const MoEConfig& e = cfg.moe;
  const std::string qk = feature(cfg, "qk_norm", "none");
  const bool bias = feature(cfg, "attention_bias", "false") == "true";
  const bool tie = feature(cfg, "tie_embeddings", "false") == "true";
  const bool moe = e.num_experts > 0;
  std::vector<int> sparse;
  for (int l = 0; l < m.layers; ++l) sparse.push_back(moe && cfg.is_moe_layer(l) ? 1 : 0);
  const bool all_sparse = std::all_of(sparse.begin(), sparse.end(), [](int s) { return s == 1; });
  if (mt.empty()) {  // the architecture whose features the model uses
    if (!moe)
      mt = qk == "head" ? "qwen3" : bias ? "qwen2" : "llama";
    else if (e.shared_expert_ffn_hidden_size > 0 || bias)
      mt = "qwen2_moe";
    else if (qk == "full")
      mt = "olmoe";
    else if (qk == "head" || !all_sparse || e.pre_softmax)
      mt = "qwen3_moe";
    else
      mt = "mixtral";
  }
  if (std::find(supported_model_types().begin(), supported_model_types().end(), mt) == supported_model_types().end())
    user_error("hf error H2: model type '{}' is not one foldmoe writes ({})", mt,
               fmt::join(supported_model_types(), ", "));
  const bool moe_type = mt == "mixtral" || mt == "qwen2_moe" || mt == "qwen3_moe" || mt == "olmoe";
  if (moe != moe_type) cannot(mt, moe ? "the model has MoE layers" : "the model has no MoE layers");
  const std::string want_qk = mt == "qwen3" || mt == "qwen3_moe" ? "head" : mt == "olmoe" ? "full" : "none";
  if (qk != want_qk) cannot(mt, fmt::format("model.qk_norm is {}, the architecture has {}", qk, want_qk));
  if (mt == "qwen2" && !bias) cannot(mt, "Qwen2 always has attention biases, the model has none");
  if (mt == "mixtral" && bias) cannot(mt, "Mixtral has no attention biases");
  const int ffn_moe = cfg.moe_ffn();

  json j;
  const std::map<std::string, std::string> arch = {
      {"llama", "LlamaForCausalLM"},     {"qwen2", "Qwen2ForCausalLM"},        {"qwen3", "Qwen3ForCausalLM"},
      {"mixtral", "MixtralForCausalLM"}, {"qwen2_moe", "Qwen2MoeForCausalLM"}, {"qwen3_moe", "Qwen3MoeForCausalLM"},
      {"olmoe", "OlmoeForCausalLM"}};
  j["architectures"] = {arch.at(mt)};
  j["model_type"] = mt;
  j["torch_dtype"] = torch_dtype;
  j["hidden_size"] = m.hidden;
  j["num_hidden_layers"] = m.layers;
  j["num_attention_heads"] = m.heads;
  j["num_key_value_heads"] = m.kv_heads;
  j["head_dim"] = cfg.head_dim();
  j["intermediate_size"] = mt == "mixtral" || mt == "olmoe" ? ffn_moe : m.ffn;
  j["vocab_size"] = m.vocab;
  j["rms_norm_eps"] = m.norm_eps;
  j["rope_theta"] = m.rope_theta;
  j["max_position_embeddings"] = m.max_seq_len;
  j["initializer_range"] = m.init_std;
  j["tie_word_embeddings"] = tie;
  j["hidden_act"] = "silu";
  j["attention_dropout"] = 0.0;
  j["use_cache"] = true;
  if (mt == "llama" || mt == "qwen3" || mt == "qwen3_moe" || mt == "olmoe")
    j["attention_bias"] = bias;
  else if (bias != (mt == "qwen2" || mt == "qwen2_moe"))
    cannot(mt, "its attention biases differ from the model's");
  if (mt == "llama") j["mlp_bias"] = false;
  if (mt == "qwen2_moe") j["qkv_bias"] = true;
  const std::string rs = feature(cfg, "rope_scaling", "none");
  if (rs == "none") {
    j["rope_scaling"] = nullptr;
  } else {
    json r = {{"rope_type", rs}, {"factor", feature_num(cfg, "rope_scaling_factor", 1.0)}};
    if (rs == "llama3") {
      r["low_freq_factor"] = feature_num(cfg, "rope_low_freq_factor", 1.0);
      r["high_freq_factor"] = feature_num(cfg, "rope_high_freq_factor", 4.0);
      r["original_max_position_embeddings"] = std::lround(feature_num(cfg, "rope_original_max_position", 8192));
    } else if (rs == "yarn") {
      r["original_max_position_embeddings"] =
          std::lround(feature_num(cfg, "rope_original_max_position", m.max_seq_len));
      r["beta_fast"] = feature_num(cfg, "rope_beta_fast", 32);
      r["beta_slow"] = feature_num(cfg, "rope_beta_slow", 1);
      r["attention_factor"] = feature_num(cfg, "rope_attention_factor", 1.0);
    }
    j["rope_scaling"] = r;
  }
  if (!moe) return j;

  if (e.score_function != "softmax" || e.router_bias || e.enable_expert_bias || e.topk_scaling_factor || e.num_groups ||
      e.group_topk)
    cannot(mt, "its router is not plain softmax top-k (score_function, router_bias, expert bias, scaling or groups)");
  if (mt == "mixtral" && e.pre_softmax) cannot(mt, "Mixtral always renormalises the top-k (moe.pre_softmax = false)");
  if ((mt == "mixtral" || mt == "olmoe") && !all_sparse) cannot(mt, "every layer of this architecture is MoE");
  if (mt != "qwen2_moe" && e.shared_expert_ffn_hidden_size > 0) cannot(mt, "the architecture has no shared expert");
  if (mt == "qwen2_moe" && (e.shared_expert_ffn_hidden_size == 0 || !e.shared_expert_gate))
    cannot(mt, "Qwen2-MoE always has a gated shared expert");
  j[mt == "mixtral" ? "num_local_experts" : "num_experts"] = e.num_experts;
  j["num_experts_per_tok"] = e.topk;
  if (mt != "mixtral") j["norm_topk_prob"] = !e.pre_softmax;
  j["router_aux_loss_coef"] = e.aux_loss_coeff.empty() ? 0.0 : e.aux_loss_coeff.front();
  j["output_router_logits"] = false;
  if (mt == "mixtral")
    j["router_jitter_noise"] = e.input_jitter_eps.value_or(0.0);
  else if (e.input_jitter_eps)
    cannot(mt, "the architecture has no router jitter");
  if (mt == "qwen2_moe" || mt == "qwen3_moe") {
    j["moe_intermediate_size"] = ffn_moe;
    j["decoder_sparse_step"] = 1;
    json only = json::array();
    for (int l = 0; l < m.layers; ++l)
      if (!sparse[size_t(l)]) only.push_back(l);
    j["mlp_only_layers"] = only;
  }
  if (mt == "qwen2_moe") j["shared_expert_intermediate_size"] = e.shared_expert_ffn_hidden_size;
  return j;
}

}  // namespace foldmoe::hf
