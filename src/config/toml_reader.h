// Reading configuration from TOML. Unspecified keys keep the struct defaults of config.h (the
// built-in tiny MoE), so every path to a Config gives the same values for the keys it omits.
#pragma once

#include <string>

#include "config/config.h"

namespace foldmoe {

// Parses TOML text (source names the file for messages) over the defaults. Unknown sections/keys
// and wrong types raise UserError naming the key (with a nearest-name suggestion). Values are not
// checked here: call validate() after apply_overrides().
Config config_from_toml(const std::string& text, const std::string& source);
// Reads and parses a TOML file. UserError naming the path when it does not exist, is a directory
// or cannot be read.
Config load_config_file(const std::string& path);

}  // namespace foldmoe
