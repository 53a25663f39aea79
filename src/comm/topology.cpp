#include "comm/topology.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/check.h"

namespace foldmoe {

// ---------------------------------------------------------------------------------------------
// Generator (docs/topology.md §2.2, §2.3)

RankGrid::RankGrid(const std::array<int, 5>& order_tokens, const std::array<int, 5>& sizes_by_token)
    : order_(order_tokens), sizes_(sizes_by_token), world_(1) {
  for (int s : sizes_) {
    FOLDMOE_CHECK(s >= 1, "grid size {} < 1", s);
    world_ *= s;
  }
}

int RankGrid::stride(int token) const {
  int st = 1;
  for (int i = 0; i < 5 && order_[size_t(i)] != token; ++i) st *= sizes_[size_t(order_[size_t(i)])];
  return st;
}

int RankGrid::coordinate(int rank, int token) const { return (rank / stride(token)) % size(token); }

RankGroups RankGrid::groups(std::initializer_list<int> request) const {
  return groups(std::vector<int>(request));
}

RankGroups RankGrid::groups(const std::vector<int>& request) const {
  std::vector<int> masked, unmasked;  // positions in order-string order
  for (int i = 0; i < 5; ++i) {
    const int t = order_[size_t(i)];
    (std::find(request.begin(), request.end(), t) != request.end() ? masked : unmasked).push_back(i);
  }
  std::array<int, 5> strides{};
  for (int i = 0, st = 1; i < 5; ++i) strides[size_t(i)] = st, st *= sizes_[size_t(order_[size_t(i)])];
  int gsize = 1;
  for (int i : masked) gsize *= sizes_[size_t(order_[size_t(i)])];
  // Σ digits(x, radices of `pos`)·stride: digits with the first position fastest.
  const auto place = [&](int x, const std::vector<int>& pos) {
    int r = 0;
    for (int i : pos) {
      const int radix = sizes_[size_t(order_[size_t(i)])];
      r += (x % radix) * strides[size_t(i)];
      x /= radix;
    }
    return r;
  };
  RankGroups out(size_t(world_ / gsize));
  for (int g = 0; g < world_ / gsize; ++g) {
    const int base = place(g, unmasked);
    std::vector<int>& members = out[size_t(g)];
    members.resize(size_t(gsize));
    for (int m = 0; m < gsize; ++m) members[size_t(m)] = base + place(m, masked);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Topology

Topology::Topology(const LayoutSpec& spec) {
  validate_layout(spec);
  std::array<int, 5> order{};
  parse_order(spec.order, order);
  order_ = spec.order;
  ParallelSizes& s = sizes_;
  s.world = spec.world, s.tp = spec.tp, s.cp = spec.cp, s.pp = spec.pp, s.ep = spec.ep;
  s.etp = spec.etp > 0 ? spec.etp : spec.tp;
  s.dp = s.world / (s.tp * s.cp * s.pp);
  s.edp = s.world / (s.etp * s.ep * s.pp);
  attention_ = RankGrid(order, {s.tp, s.cp, 1, s.dp, s.pp});
  expert_ = RankGrid(order, {s.etp, 1, s.ep, s.edp, s.pp});

  TopologyGroups& g = groups_;
  const RankGrid& a = attention_;
  g.tp = a.groups({kTP});
  g.cp = a.groups({kCP});
  g.dp = a.groups({kDP});
  g.pp = a.groups({kPP});
  g.dp_cp = a.groups({kDP, kCP});
  g.tp_cp = a.groups({kTP, kCP});
  g.tp_pp = a.groups({kTP, kPP});
  g.tp_dp_cp = a.groups({kTP, kDP, kCP});
  for (const std::vector<int>& m : g.pp) {
    g.embedding.push_back(m.size() > 1 ? std::vector<int>{m.front(), m.back()} : std::vector<int>{m.front()});
    g.position_embedding.push_back({m.front()});
  }
  const RankGrid& e = expert_;
  g.etp = e.groups({kTP});
  g.ep = e.groups({kEP});
  g.edp = e.groups({kDP});
  g.etp_ep = e.groups({kTP, kEP});
  g.etp_ep_pp = e.groups({kTP, kEP, kPP});
  g.expert_pp = e.groups({kPP});
  FOLDMOE_CHECK(g.expert_pp == g.pp, "pipeline groups of the two grids differ despite rule L5");
}

RankCoords Topology::coords(int rank) const {
  FOLDMOE_CHECK(rank >= 0 && rank < sizes_.world, "rank {} outside world {}", rank, sizes_.world);
  RankCoords c;
  c.tp = attention_.coordinate(rank, kTP);
  c.cp = attention_.coordinate(rank, kCP);
  c.dp = attention_.coordinate(rank, kDP);
  c.pp = attention_.coordinate(rank, kPP);
  c.etp = expert_.coordinate(rank, kTP);
  c.ep = expert_.coordinate(rank, kEP);
  c.edp = expert_.coordinate(rank, kDP);
  return c;
}

std::string Topology::folding() const {
  const int64_t fold = int64_t(sizes_.etp) * sizes_.ep, tc = int64_t(sizes_.tp) * sizes_.cp;
  if (fold == tc) return "onto TP×CP";
  if (fold < tc) return tc % fold == 0 ? "within TP×CP" : "straddling TP×CP groups";
  return "spanning DP replicas";
}

std::pair<int, int> Topology::locate(const RankGroups& groups, int rank) {
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t m = 0; m < groups[g].size(); ++m)
      if (groups[g][m] == rank) return {int(g), int(m)};
  return {-1, -1};
}

}  // namespace foldmoe
