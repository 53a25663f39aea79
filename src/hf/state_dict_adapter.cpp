#include "hf/state_dict_adapter.h"

#include <regex>

#include "core/check.h"

namespace foldmoe::hf {

std::vector<std::string> StateDictAdapter::to_hf(const std::string& name) const {
  if (name == "embedding.weight") return {"model.embed_tokens.weight"};
  if (name == "final_norm.weight") return {"model.norm.weight"};
  if (name == "lm_head.weight") return {"lm_head.weight"};
  static const std::regex layer_re(R"(layers\.(\d+)\.(.+))");
  std::smatch m;
  if (!std::regex_match(name, m, layer_re)) return {};
  const std::string L = "model.layers." + m[1].str() + ".", rest = m[2].str();
  static const std::map<std::string, std::string> attention = {
      {"attn_norm.weight", "input_layernorm.weight"}, {"mlp_norm.weight", "post_attention_layernorm.weight"},
      {"attn.wq", "self_attn.q_proj.weight"},         {"attn.wk", "self_attn.k_proj.weight"},
      {"attn.wv", "self_attn.v_proj.weight"},         {"attn.wo", "self_attn.o_proj.weight"},
      {"attn.q_bias", "self_attn.q_proj.bias"},       {"attn.k_bias", "self_attn.k_proj.bias"},
      {"attn.v_bias", "self_attn.v_proj.bias"},       {"attn.q_norm", "self_attn.q_norm.weight"},
      {"attn.k_norm", "self_attn.k_norm.weight"},     {"mlp.fc2", "mlp.down_proj.weight"}};
  if (const auto it = attention.find(rest); it != attention.end()) return {L + it->second};
  if (rest == "mlp.fc1") return {L + "mlp.gate_proj.weight", L + "mlp.up_proj.weight"};
  if (moe_.block.empty()) return {};
  const std::string B = L + moe_.block + ".";
  if (rest == "moe.router.weight") return {B + moe_.router + ".weight"};
  static const std::regex expert_re(R"(moe\.experts\.(\d+)\.(fc1|fc2))");
  if (std::regex_match(rest, m, expert_re)) {
    const std::string E = B + "experts." + m[1].str() + ".";
    if (m[2] == "fc1") return {E + moe_.gate + ".weight", E + moe_.up + ".weight"};
    return {E + moe_.down + ".weight"};
  }
  if (moe_.shared.empty()) return {};
  const std::string S = B + moe_.shared + ".";
  if (rest == "moe.shared.fc1") return {S + moe_.gate + ".weight", S + moe_.up + ".weight"};
  if (rest == "moe.shared.fc2") return {S + moe_.down + ".weight"};
  if (rest == "moe.shared_gate.weight") return {B + moe_.shared_gate + ".weight"};
  return {};
}

const StateDictAdapter& adapter_for(const std::string& mt) {
  if (mt == "llama" || mt == "qwen2" || mt == "qwen3") return dense_adapter();
  if (mt == "mixtral") return mixtral_adapter();
  if (mt == "qwen2_moe" || mt == "qwen3_moe") return qwen_moe_adapter();
  if (mt == "olmoe") return olmoe_adapter();
  user_error(
      "hf error H2: model_type '{}' has no state-dict adapter (foldmoe maps llama, qwen2, qwen3, mixtral, "
      "qwen2_moe, qwen3_moe, olmoe)",
      mt);
}

}  // namespace foldmoe::hf
