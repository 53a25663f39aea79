// The rules of [data] (beyond V3/V4 of the synthetic tasks) and [eval], checked with every other
// value rule (docs/rules.md): D7 split string, D8 no paths, D9 weights, D20 a key of the other
// source, D23 empty tokenizer, E1 validation without a valid split, V1 ranges. The same D7-D9 are
// checked again by GptDataset; the files are checked when the data is opened (D1, D22, D23 in
// src/data/indexed_source.cpp, D21 in src/train/trainer.cpp).
#pragma once

#include <array>
#include <optional>
#include <string>

#include "config/config.h"
#include "config/problems.h"

namespace foldmoe {

void data_rules(const Config& c, Problems& p);

// Megatron's split string: 1–3 non-negative numbers separated by ',' or '/' ("969,30,1",
// "98/2"); missing parts are 0. nullopt if it is not of that form or sums to 0.
std::optional<std::array<double, 3>> parse_data_split(const std::string& split);

}  // namespace foldmoe
