// Capacity, token dropping and padding (docs/moe.md §3). Letters: N local tokens, E experts.
#pragma once

#include <cstdint>
#include <vector>

namespace foldmoe::moe {

// C_eff = min(ceil(((N·k)/E)·CF), N), evaluated in double in exactly this order (docs/moe.md §3.1).
int64_t expert_capacity(int64_t N, int k, int E, double cf);

// The dropping units (docs/moe.md §3.5): each unit is a list of rows in unit token order. Empty = one unit
// holding all N rows in flattened order.
struct CapacityUnits {
  std::vector<int32_t> rows;     // concatenated units
  std::vector<int64_t> offsets;  // unit u = rows[offsets[u], offsets[u+1])
  bool empty() const { return offsets.size() < 2; }
};

// Units of `[moe] capacity_partition = [tp, cp]` for a one-process run with local S = S_full
// positions and B sequences (row n = s·B + b): CP rank c holds zig-zag chunks c and 2cp-1-c,
// TP rank t the t-th of tp contiguous pieces of that; inside a unit rows are ordered by local
// position, then batch index. Units are listed in (cp rank, tp rank) order.
CapacityUnits capacity_partition_units(int64_t S, int64_t B, int tp, int cp);

enum class DropPolicy { Probs, Position };

// Applies docs/moe.md §3.2–3.3 per unit. probs_NE/map_NE: router output; final_probs_NE/final_map_NE
// overwritten. scratch is reused between calls.
void apply_capacity(const float* probs_NE, const uint8_t* map_NE, int64_t N, int E, int k, double cf,
                    DropPolicy policy, bool pad, const CapacityUnits& units, float* final_probs_NE,
                    uint8_t* final_map_NE, std::vector<int32_t>& scratch);

}  // namespace foldmoe::moe
