// Hugging Face `config.json` <-> foldmoe's [model] and [moe] sections, for the architectures whose
// weights foldmoe reads (llama, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe, olmoe). Every key of a
// config.json is either mapped, accepted as one that does not change the model's math (use_cache,
// token ids, ...), or refused with the key and the reason (rule H2): nothing is silently ignored.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"

namespace foldmoe::hf {

struct HfModelConfig {
  std::string dir;
  std::string model_type;
  nlohmann::json json;  // config.json as read
  // The model and moe keys it determines, as `--section.key=value` overrides (config/flag_reader.h).
  std::vector<std::string> overrides;
};

// True when `dir` is a directory holding a config.json (a Hugging Face model directory).
bool is_hf_directory(const std::string& dir);

// Reads and maps `dir`/config.json; UserError H1 (missing or not JSON) or H2 (unsupported).
HfModelConfig read_hf_config(const std::string& dir);

// `user` with the model keys of `hf` applied. A key the user set to a value other than both the
// built-in default and the model's is an error naming both values (H5): a run cannot silently
// train another shape than the checkpoint's. The tokenizer becomes the model directory's unless
// the user named one.
Config apply_hf_config(const Config& user, const HfModelConfig& hf);

// The config.json of a foldmoe model: `model_type` is one of the supported types, or "" to pick
// the one whose features the model uses; dtype "float32" or "bfloat16". UserError H2 when the
// model uses a feature the architecture cannot express.
nlohmann::json hf_config_json(const Config& cfg, std::string model_type, const std::string& torch_dtype);

// The architectures foldmoe maps, for messages.
const std::vector<std::string>& supported_model_types();

}  // namespace foldmoe::hf
