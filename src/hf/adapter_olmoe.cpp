// OLMoE: model.layers.{i}.mlp.{gate, experts.{e}.{gate,up,down}_proj}; its QK-norm weights span
// the whole q and k projections (self_attn.q_norm [A·D], k_norm [G·D]).
#include "hf/state_dict_adapter.h"

namespace foldmoe::hf {
const StateDictAdapter& olmoe_adapter() {
  static const StateDictAdapter a(MoeNames{"mlp", "gate", "gate_proj", "up_proj", "down_proj", "", ""});
  return a;
}
}  // namespace foldmoe::hf
