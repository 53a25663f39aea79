// Which links a process group crosses: the ranks of a group follow from the order string and the
// sizes (comm/topology.h's generator); a group whose ranks sit in one node uses the intra-node link
// (NVLink), otherwise the network.
#pragma once

#include <vector>

#include "comm/topology.h"
#include "plan/layout.h"

namespace foldmoe::plan {

// How a group of n ranks is spread over nodes of `per_node` devices.
struct GroupSpan {
  int size = 1;
  int nodes = 1;           // nodes the group touches
  int ranks_per_node = 1;  // members of the group in one node (groups are regular)
  bool crosses_nodes() const { return nodes > 1; }
};

// The group of rank 0 over `tokens` (indices into kOrderTokens) in the attention grid (expert = false)
// or the expert grid (expert = true); every group of a grid has the same shape.
GroupSpan group_span(const PlanLayout& l, int world, int per_node, bool expert, const std::vector<int>& tokens);

}  // namespace foldmoe::plan
