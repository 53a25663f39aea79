// `foldmoe dump-reference`: runs one step's forward and backward (no optimizer update) and writes
// parameters, batch, gradients and outputs in the format of docs/model.md, for the PyTorch
// reference in tests/reference/ to check independently.
#pragma once

#include <string>

#include "config/config.h"

namespace foldmoe {

void dump_reference(const Config& cfg, const std::string& out_path);

}  // namespace foldmoe
