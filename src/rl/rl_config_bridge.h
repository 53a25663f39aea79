// The bridge between the `[rl]` section of the one configuration table (model/config.h RlSection,
// TOML keys and flags) and the typed rl::RlConfig that the algorithm layer reads. RlSection is the
// source of truth for keys and values; RlConfig is derived from it (enums parsed with the
// rl_config parse_* functions, which name the key on a bad value).
#pragma once

#include "model/config.h"
#include "rl/rl_config.h"

namespace foldmoe::rl {

// The typed view. UserError naming the key for an unknown enum spelling or a malformed list.
RlConfig rl_config_from(const RlSection& s);
// Writes every RlConfig field back into the section (the foldmoe-only keys are left alone).
void store_rl_config(const RlConfig& c, RlSection& s);
// Applies the preset named by s.preset to the section: exactly the fields the preset controls.
void apply_rl_preset_section(RlSection& s);

}  // namespace foldmoe::rl
