#include "hf/state_dict_adapter.h"

#include <cctype>
#include <map>
#include <optional>
#include <string_view>
#include <utility>

#include "core/check.h"

namespace foldmoe::hf {

namespace {
// "<prefix><digits>.<rest>" -> (digits, rest); nothing for any other name. (Plain parsing rather
// than std::regex: libstdc++'s regex trips GCC 12's maybe-uninitialized warning under ASan.)
std::optional<std::pair<std::string, std::string>> split_index(std::string_view name, std::string_view prefix) {
  if (!name.starts_with(prefix)) return std::nullopt;
  name.remove_prefix(prefix.size());
  size_t digits = 0;
  while (digits < name.size() && std::isdigit(static_cast<unsigned char>(name[digits]))) ++digits;
  if (digits == 0 || digits + 1 >= name.size() || name[digits] != '.') return std::nullopt;
  return std::pair{std::string(name.substr(0, digits)), std::string(name.substr(digits + 1))};
}
}  // namespace

std::vector<std::string> StateDictAdapter::to_hf(const std::string& name) const {
  if (name == "embedding.weight") return {"model.embed_tokens.weight"};
  if (name == "final_norm.weight") return {"model.norm.weight"};
  if (name == "lm_head.weight") return {"lm_head.weight"};
  const auto layer = split_index(name, "layers.");
  if (!layer) return {};
  const std::string L = "model.layers." + layer->first + ".", rest = layer->second;
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
  if (const auto expert = split_index(rest, "moe.experts."); expert) {
    const std::string E = B + "experts." + expert->first + ".";
    if (expert->second == "fc1") return {E + moe_.gate + ".weight", E + moe_.up + ".weight"};
    if (expert->second == "fc2") return {E + moe_.down + ".weight"};
    return {};
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
