// Llama, Qwen2 and Qwen3 decoders: no MoE block; attention biases (Qwen2) and per-head QK-norm
// (Qwen3) use the shared attention names.
#include "hf/state_dict_adapter.h"

namespace foldmoe::hf {
const StateDictAdapter& dense_adapter() {
  static const StateDictAdapter a(MoeNames{});
  return a;
}
}  // namespace foldmoe::hf
