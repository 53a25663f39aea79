// Command-line configuration: `--section.key=value` flags over a Config.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace foldmoe {

// Applies `--section.key=value` overrides in order. Lists are written [a,b] or a,b; optional keys
// accept none. UserError naming the flag for an unknown key (with a suggestion) or a bad value.
void apply_overrides(Config& c, const std::vector<std::string>& flags);

}  // namespace foldmoe
