// Test-only views into an MoE activation cache (spec 02 §12 tests need the routing decisions).
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe_layer.h"

namespace foldmoe::moe {

// final_map [N, E] of the last forward (after capacity; pad fillers included).
std::vector<uint8_t> cached_final_map(const MoELayer::Cache& c);
// Rows per local expert handed to the experts in the last forward.
std::vector<int64_t> cached_tokens_per_local_expert(const MoELayer::Cache& c);

}  // namespace foldmoe::moe
