// Mixtral: model.layers.{i}.block_sparse_moe.{gate, experts.{e}.w1 (gate), w3 (up), w2 (down)}.
#include "hf/state_dict_adapter.h"

namespace foldmoe::hf {
const StateDictAdapter& mixtral_adapter() {
  static const StateDictAdapter a(MoeNames{"block_sparse_moe", "gate", "w1", "w3", "w2", "", ""});
  return a;
}
}  // namespace foldmoe::hf
