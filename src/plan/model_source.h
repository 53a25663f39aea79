// The model a plan is for, as a foldmoe Config: a foldmoe TOML config, a Hugging Face model
// directory (its config.json), or a preset of the paper's models (`preset:mixtral-8x22b`, ...).
#pragma once

#include <string>

#include "config/config.h"

namespace foldmoe::plan {

// UserError naming the value and what to give instead; an HF config with a feature the planner
// cannot model is refused with the key that has it (rule P2).
Config load_plan_model(const std::string& arg);

// The model half of an HF config.json (the keys of docs/planner.md §1); `source` names it in errors.
Config model_from_hf_json(const std::string& json_text, const std::string& source);

std::string model_preset_names();

}  // namespace foldmoe::plan
