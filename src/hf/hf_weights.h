// Loading a Hugging Face model directory into a (possibly distributed) foldmoe model, and saving
// one as a Hugging Face directory, without the whole model ever being on one rank.
//
// Loading: every rank maps the safetensors files and, for each of its own parameters, reads only
// the elements its shard holds (through the parameter's global index map and the state-dict
// adapter), so a rank's resident memory is its shards plus the pages it touched.
// Saving: every rank computes the same file plan; world rank 0 creates the files (headers,
// sized data), then each rank writes the elements it owns in place (the owners of
// LogicalParams::gather: one replica, one TP rank of replicated parameters), then rank 0 writes the
// index, config.json and the tokenizer files and renames the finished directory into place.
#pragma once

#include <cstdint>
#include <string>

#include "comm/process_groups.h"
#include "hf/hf_config.h"
#include "model/model.h"

namespace foldmoe::hf {

// Collective over the world. Validates the tensor set against the model first (H3: a missing or
// extra tensor, a shape that disagrees with config.json; H4: a dtype other than F32/BF16/F16;
// C4: a damaged file), then fills the parameters of `model`.
void load_hf_weights(const HfModelConfig& hf, Model& model, const ProcessGroups& groups);

struct HfSaveOptions {
  std::string model_type;      // "" = the architecture whose features the model uses
  std::string dtype = "bf16";  // bf16 | fp32
  uint64_t max_shard_bytes = 5000000000ull;
  std::string tokenizer_dir;  // its tokenizer files are copied along ("" = none)
};

// Collective over the world. `out_dir` must not exist (H6); it appears only once complete.
void save_hf_weights(const std::string& out_dir, const Config& cfg, Model& model, const ProcessGroups& groups,
                     const HfSaveOptions& options);

// The directory of the configuration's tokenizer ([data] tokenizer names a tokenizer.json, a
// SentencePiece .model or their directory), whose files an export copies; "" for `char`.
std::string tokenizer_dir_of(const Config& cfg);

// UserError H6 when `out_dir` exists, or its parent is not a writable directory: checked by every
// command before any work.
void check_hf_output(const std::string& out_dir);

}  // namespace foldmoe::hf
