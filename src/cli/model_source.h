// The model argument of eval, generate and rl --init: a foldmoe checkpoint (a run directory, its
// checkpoints/ directory or one step), or a Hugging Face model directory, recognised by its
// config.json (docs/hf-models.md).
#pragma once

#include <optional>
#include <string>

#include "config/config.h"
#include "hf/hf_config.h"

namespace foldmoe::cli {

struct ModelSource {
  std::string dir;                      // the checkpoint found, or the HF directory
  std::optional<hf::HfModelConfig> hf;  // set for a Hugging Face directory
  // The checkpoint's own configuration, or the built-in defaults with the model keys of config.json.
  Config config() const;
};

ModelSource model_source(const std::string& arg, const std::string& what);

// The HF directory's tokenizer (tokenizer.json) when it has one: `cfg` unchanged otherwise.
void use_hf_tokenizer(Config& cfg, const ModelSource& source);

}  // namespace foldmoe::cli
