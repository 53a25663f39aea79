#include "plan/links.h"

#include <set>
#include <vector>

#include "core/check.h"

namespace foldmoe::plan {

GroupSpan group_span(const PlanLayout& l, int world, int per_node, bool expert, const std::vector<int>& tokens) {
  std::array<int, 5> order{};
  const std::string bad = parse_order(l.order, order);
  FOLDMOE_CHECK(bad.empty(), "order {} invalid: {}", l.order, bad);
  const std::array<int, 5> sizes =
      expert ? std::array<int, 5>{l.etp, 1, l.ep, l.edp, l.pp} : std::array<int, 5>{l.tp, l.cp, 1, l.dp, l.pp};
  const RankGrid grid(order, sizes);
  FOLDMOE_CHECK(grid.world() == world, "grid world {} != {}", grid.world(), world);
  // Members of the group that holds rank 0: every combination of the requested tokens' digits.
  std::vector<int> members = {0};
  for (int t : tokens) {
    std::vector<int> next;
    for (int m : members)
      for (int d = 0; d < grid.size(t); ++d) next.push_back(m + d * grid.stride(t));
    members.swap(next);
  }
  std::set<int> nodes;
  for (int m : members) nodes.insert(m / per_node);
  GroupSpan s;
  s.size = int(members.size());
  s.nodes = int(nodes.size());
  s.ranks_per_node = s.size / s.nodes;
  return s;
}

}  // namespace foldmoe::plan
