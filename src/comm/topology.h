// Rank topology and MoE parallel folding (docs/topology.md): one mixed-radix rank generator, two grids
// (attention TP×CP×DP×PP, expert ETP×EP×EDP×PP) over the same world, every process group as
// explicit rank lists and per-rank coordinates. The layout rules live in config/layout_rules.h.
// Pure computation: no communicator is touched here (mpi_communicator.h creates them).
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "comm/process_groups.h"
#include "config/layout_rules.h"

namespace foldmoe {

using RankGroups = std::vector<std::vector<int>>;  // groups in generation order, members in member order

// One grid of docs/topology.md §2.2: sizes per token, laid out by an order string (first token fastest).
class RankGrid {
 public:
  // order: the five tokens (a valid permutation, see parse_order); sizes indexed like kOrderTokens
  // (tp, cp, ep, dp, pp).
  RankGrid(const std::array<int, 5>& order_tokens, const std::array<int, 5>& sizes_by_token);
  RankGrid() : order_{0, 1, 2, 3, 4}, sizes_{1, 1, 1, 1, 1}, world_(1) {}

  int world() const { return world_; }
  // Size and stride of a token (index into kOrderTokens).
  int size(int token) const { return sizes_[size_t(token)]; }
  int stride(int token) const;
  // Coordinate of `rank` along `token`.
  int coordinate(int rank, int token) const;
  // groups(grid, request) of docs/topology.md §2.3; `request` is a set of tokens (indices into kOrderTokens).
  RankGroups groups(std::initializer_list<int> request) const;
  RankGroups groups(const std::vector<int>& request) const;

 private:
  std::array<int, 5> order_;  // order_[i] = token at position i (fastest first)
  std::array<int, 5> sizes_;  // by token
  int world_;
};

// Every group of docs/topology.md §3 as rank lists.
struct TopologyGroups {
  // Attention grid.
  RankGroups tp, cp, dp, pp, dp_cp, tp_cp, tp_pp, tp_dp_cp, embedding, position_embedding;
  // Expert grid (its pp groups equal `pp` by L5; expert_pp is computed independently).
  RankGroups etp, ep, edp, etp_ep, etp_ep_pp, expert_pp;
};

class Topology {
 public:
  // Validates L1–L5 (throws UserError) and builds both grids.
  explicit Topology(const LayoutSpec& spec);

  const ParallelSizes& sizes() const { return sizes_; }
  const std::string& order() const { return order_; }
  const RankGrid& attention() const { return attention_; }
  const RankGrid& expert() const { return expert_; }
  const TopologyGroups& groups() const { return groups_; }
  RankCoords coords(int rank) const;

  // Where the ETP×EP group sits relative to the attention grid (docs/topology.md §2.5):
  // "onto TP×CP" (etp·ep = tp·cp), "within TP×CP" (etp·ep < tp·cp), "spanning DP replicas".
  std::string folding() const;

  // The group of `rank` in a list and its member index; {-1, -1} if the rank is in none.
  static std::pair<int, int> locate(const RankGroups& groups, int rank);

 private:
  ParallelSizes sizes_;
  std::string order_;
  RankGrid attention_, expert_;
  TopologyGroups groups_;
};

}  // namespace foldmoe
