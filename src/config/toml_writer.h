// Configuration -> TOML text: what `foldmoe config` prints and what a run directory keeps.
#pragma once

#include <string>

#include "config/config.h"

namespace foldmoe {

// The resolved configuration as TOML: every key of the field table, by section, each with its
// help text. Reads back (config_from_toml) to the same Config.
std::string config_to_toml(const Config& c);

}  // namespace foldmoe
