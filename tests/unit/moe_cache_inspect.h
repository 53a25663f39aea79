// Reads routing decisions out of an MoELayer activation cache (tests only).
#pragma once

#include <cstdint>
#include <vector>

#include "moe/moe_layer_cache.h"

namespace foldmoe::moe {

// final_map [N, E] of the last forward (after capacity; pad fillers included).
inline std::vector<uint8_t> cached_final_map(const MoELayer::Cache& c) {
  return std::vector<uint8_t>(c.final_map_NE.begin(), c.final_map_NE.begin() + c.N * c.E);
}
// Rows per local expert handed to the experts in the last forward.
inline std::vector<int64_t> cached_tokens_per_local_expert(const MoELayer::Cache& c) {
  return c.ds.tokens_per_local_expert;
}

}  // namespace foldmoe::moe
