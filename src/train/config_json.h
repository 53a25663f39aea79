// The resolved configuration as JSON ({section: {key: value}}), derived from the field table.
// Used in checkpoint manifests and reference dumps.
#pragma once

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace foldmoe {

nlohmann::json config_to_json(const Config& c);

}  // namespace foldmoe
