#include "plan/model_source.h"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "config/toml_reader.h"
#include "core/check.h"

namespace foldmoe::plan {
namespace {

// A Mixture-of-Experts model with every layer MoE, SwiGLU experts and no dense FFN.
Config moe_model(int layers, int hidden, int heads, int kv_heads, int head_dim, int experts, int topk, int expert_ffn,
                 int shared_ffn, int vocab) {
  Config c;
  c.model.layers = layers, c.model.hidden = hidden, c.model.heads = heads, c.model.kv_heads = kv_heads;
  c.model.head_dim = head_dim, c.model.ffn = expert_ffn, c.model.vocab = vocab;
  c.moe.num_experts = experts, c.moe.topk = topk, c.moe.ffn_hidden_size = expert_ffn;
  c.moe.shared_expert_ffn_hidden_size = shared_ffn, c.moe.shared_expert_gate = shared_ffn > 0;
  c.moe.layer_freq = {1};
  c.moe.capacity_factor = 1.0;  // the paper's benchmarks drop tokens at capacity 1.0
  return c;
}

// The paper's four models (arXiv 2504.14960, §5 and its model table).
const std::map<std::string, Config>& presets() {
  static const std::map<std::string, Config> p = {
      {"mixtral-8x22b", moe_model(56, 6144, 48, 8, 128, 8, 2, 16384, 0, 32768)},
      {"qwen2-57b-a14b", moe_model(28, 3584, 28, 4, 128, 64, 8, 2560, 20480, 151936)},
      {"llama3-8x70b", moe_model(80, 8192, 64, 8, 128, 8, 2, 28672, 0, 128256)},
      {"mixtral-8x22b-g8t8", moe_model(56, 6144, 48, 8, 128, 64, 8, 2048, 0, 32768)},
  };
  return p;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

std::string model_preset_names() {
  std::string out;
  for (const auto& [name, _] : presets()) out += (out.empty() ? "preset:" : ", preset:") + name;
  return out;
}

Config model_from_hf_json(const std::string& text, const std::string& source) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    user_error("plan error P2: --model {}: config.json is not valid JSON ({})\n  fix: give an HF model directory",
               source, e.what());
  }
  const auto integer = [&](const char* key, bool required, int fallback) -> int {
    if (!j.contains(key) || j[key].is_null()) {
      if (required)
        user_error(
            "plan error P2: --model {}: config.json has no \"{}\"\n  fix: the planner needs it; add it or give a "
            "foldmoe TOML config",
            source, key);
      return fallback;
    }
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0 || j[key].get<int64_t>() > (1ll << 30))
      user_error("plan error P2: --model {}: config.json \"{}\" = {} is not a non-negative integer\n  fix: correct it",
                 source, key, j[key].dump());
    return j[key].get<int>();
  };
  // Features whose cost the planner has no model for: refused, naming the key.
  for (const char* key : {"kv_lora_rank", "q_lora_rank", "sliding_window_pattern", "n_shared_experts",
                          "first_k_dense_replace", "mlp_only_layers", "decoder_sparse_step"}) {
    if (!j.contains(key) || j[key].is_null()) continue;
    const bool trivial = (std::string(key) == "decoder_sparse_step" && j[key] == 1) ||
                         (std::string(key) == "mlp_only_layers" && j[key].is_array() && j[key].empty()) ||
                         (std::string(key) == "first_k_dense_replace" && j[key] == 0);
    if (!trivial)
      user_error(
          "plan error P2: --model {}: config.json \"{}\" = {} describes a feature the planner does not model\n"
          "  fix: give a foldmoe TOML config that approximates the model",
          source, key, j[key].dump());
  }
  if (j.contains("hidden_act") && j["hidden_act"].is_string() && j["hidden_act"] != "silu")
    user_error(
        "plan error P2: --model {}: config.json \"hidden_act\" = {}\n  fix: the planner models SwiGLU (silu) MLPs only",
        source, j["hidden_act"].dump());
  Config c;
  c.model.hidden = integer("hidden_size", true, 0);
  c.model.layers = integer("num_hidden_layers", true, 0);
  c.model.heads = integer("num_attention_heads", true, 0);
  c.model.kv_heads = integer("num_key_value_heads", false, c.model.heads);
  c.model.head_dim = integer("head_dim", false, 0);
  c.model.ffn = integer("intermediate_size", true, 0);
  c.model.vocab = integer("vocab_size", true, 0);
  const int experts =
      j.contains("num_local_experts") ? integer("num_local_experts", true, 0) : integer("num_experts", false, 0);
  c.moe.num_experts = experts;
  c.moe.layer_freq = {1};
  if (experts > 0) {
    c.moe.topk = integer("num_experts_per_tok", true, 0);
    c.moe.ffn_hidden_size = integer("moe_intermediate_size", false, c.model.ffn);
    c.moe.shared_expert_ffn_hidden_size = integer("shared_expert_intermediate_size", false, 0);
    c.moe.shared_expert_gate = c.moe.shared_expert_ffn_hidden_size > 0;
  } else {
    c.moe.topk = 1;
  }
  if (c.model.hidden < 1 || c.model.layers < 1 || c.model.heads < 1 || c.model.kv_heads < 1 || c.model.vocab < 1 ||
      c.model.heads % c.model.kv_heads != 0 || (experts > 0 && (c.moe.topk < 1 || c.moe.topk > experts)))
    user_error(
        "plan error P2: --model {}: config.json sizes are inconsistent (hidden_size {}, num_hidden_layers {}, heads "
        "{}/{} kv, "
        "experts {}, top-k {})\n  fix: correct config.json",
        source, c.model.hidden, c.model.layers, c.model.heads, c.model.kv_heads, experts, c.moe.topk);
  if (c.model.head_dim == 0 && c.model.hidden % c.model.heads != 0)
    user_error(
        "plan error P2: --model {}: hidden_size {} is not divisible by num_attention_heads {} and there "
        "is no head_dim\n  fix: add \"head_dim\"",
        source, c.model.hidden, c.model.heads);
  return c;
}

Config load_plan_model(const std::string& arg) {
  if (arg.rfind("preset:", 0) == 0) {
    const auto it = presets().find(arg.substr(7));
    if (it == presets().end())
      user_error(
          "plan error P1: --model {}: no such preset\n  fix: use one of {}, a foldmoe TOML config or an HF model "
          "directory",
          arg, model_preset_names());
    return it->second;
  }
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_directory(arg, ec)) {
    const fs::path json = fs::path(arg) / "config.json";
    if (!fs::is_regular_file(json, ec))
      user_error(
          "plan error P1: --model {}: the directory has no config.json\n  fix: give an HF model directory, a foldmoe "
          "TOML config or one of {}",
          arg, model_preset_names());
    return model_from_hf_json(read_text(json.string()), arg);
  }
  if (arg.size() > 5 && arg.substr(arg.size() - 5) == ".json") return model_from_hf_json(read_text(arg), arg);
  if (!fs::is_regular_file(arg, ec))
    user_error(
        "plan error P1: --model {}: no such file or directory\n  fix: give a foldmoe TOML config, an HF model "
        "directory or one of {}",
        arg, model_preset_names());
  Config c = load_config_file(arg);
  if (c.model.vocab == 0)
    user_error(
        "plan error P2: --model {}: [model] vocab = 0 (taken from the data when training)\n  fix: set [model] vocab "
        "for planning",
        arg);
  return c;
}

}  // namespace foldmoe::plan
