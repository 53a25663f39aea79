// HF tensor names <-> foldmoe's logical parameter names (docs/model.md "Parameter names"), one
// adapter per architecture family, as torchtitan's StateDictAdapter. Both sides store a linear
// layer's weight as [out, in], so no tensor is transposed; the one fusion is SwiGLU's fc1 =
// [gate; up] (foldmoe) from gate_proj and up_proj (HF). So a foldmoe parameter's row-major values
// are always the listed HF tensors' values back to back, each holding an equal share of its rows.
#pragma once

#include <string>
#include <vector>

namespace foldmoe::hf {

struct MoeNames {
  std::string block;                // HF module of a layer's MoE block: "block_sparse_moe" or "mlp"
  std::string router;               // "gate"
  std::string gate, up, down;       // an expert's projections: "w1", "w3", "w2" or "gate_proj", ...
  std::string shared, shared_gate;  // shared expert module and its gate ("" when the family has none)
};

class StateDictAdapter {
 public:
  explicit StateDictAdapter(MoeNames moe) : moe_(std::move(moe)) {}
  // The HF tensors of one foldmoe parameter, in row order (empty: the name is not one this
  // architecture has).
  std::vector<std::string> to_hf(const std::string& foldmoe_name) const;

 private:
  MoeNames moe_;
};

// The adapter of a supported model_type (hf/hf_config.h); UserError H2 for another.
const StateDictAdapter& adapter_for(const std::string& model_type);

// One file per family registers its names.
const StateDictAdapter& dense_adapter();     // llama, qwen2, qwen3
const StateDictAdapter& mixtral_adapter();   // mixtral
const StateDictAdapter& qwen_moe_adapter();  // qwen2_moe, qwen3_moe
const StateDictAdapter& olmoe_adapter();     // olmoe

}  // namespace foldmoe::hf
