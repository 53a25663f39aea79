// Qwen2-MoE and Qwen3-MoE: model.layers.{i}.mlp.{gate, experts.{e}.{gate,up,down}_proj}; Qwen2-MoE
// adds mlp.shared_expert.{gate,up,down}_proj and the sigmoid gate mlp.shared_expert_gate [1, H].
// Dense layers (mlp_only_layers, decoder_sparse_step) are mlp.{gate,up,down}_proj.
#include "hf/state_dict_adapter.h"

namespace foldmoe::hf {
const StateDictAdapter& qwen_moe_adapter() {
  static const StateDictAdapter a(
      MoeNames{"mlp", "gate", "gate_proj", "up_proj", "down_proj", "shared_expert", "shared_expert_gate"});
  return a;
}
}  // namespace foldmoe::hf
