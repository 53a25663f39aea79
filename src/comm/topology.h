// Rank topology and MoE parallel folding (spec 01): one mixed-radix rank generator, two grids
// (attention TP×CP×DP×PP, expert ETP×EP×EDP×PP) over the same world, every process group as
// explicit rank lists, per-rank coordinates, and the layout rules L1–L14 with their errors.
// Pure computation: no communicator is touched here (mpi_communicator.h creates them).
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "comm/process_groups.h"

namespace foldmoe {

struct Config;

using RankGroups = std::vector<std::vector<int>>;  // groups in generation order, members in member order

// The five order-string tokens.
inline constexpr std::array<std::string_view, 5> kOrderTokens = {"tp", "cp", "ep", "dp", "pp"};

// One grid of spec 01 §2.2: sizes per token, laid out by an order string (first token fastest).
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
  // groups(grid, request) of §2.3; `request` is a set of tokens (indices into kOrderTokens).
  RankGroups groups(std::initializer_list<int> request) const;
  RankGroups groups(const std::vector<int>& request) const;

 private:
  std::array<int, 5> order_;  // order_[i] = token at position i (fastest first)
  std::array<int, 5> sizes_;  // by token
  int world_;
};

// Token indices into kOrderTokens.
enum OrderToken : int { kTP = 0, kCP = 1, kEP = 2, kDP = 3, kPP = 4 };

// Parses an order string such as "tp-cp-ep-dp-pp" into token indices (order_tokens[i] = the token
// at position i). Returns an empty string on success, or what is wrong ("unknown token \"x\"", ...).
std::string parse_order(std::string_view order, std::array<int, 5>& order_tokens);

// A layout as the user gives it; etp = 0 means etp = tp (L1).
struct LayoutSpec {
  int world = 1;
  int tp = 1, cp = 1, pp = 1, ep = 1, etp = 0;
  std::string order = "tp-cp-ep-dp-pp";
  int vpp = 1;  // virtual pipeline chunks, used only by the model-dependent rules L12/L14

  // [parallel] of a config with the given world size.
  static LayoutSpec from_config(const Config& c, int world);
};

// Every layout-rule violation of spec 01 §5, each formatted exactly like config errors
// ("layout error <id>: <what>\n  fix: <fix>"), in rule order.
//  - always: L1 (sizes >= 1), L2 (order string), L3 (world vs tp·cp·pp), L4 (world vs etp·ep·pp),
//    L5 (pipeline groups of both grids identical);
//  - with a model config: L6 (ep | num_experts), L7 (SP with TP and MoE), L8, L9 (sequence
//    length vs cp/tp), L10 (FFN widths vs tp/etp), L11 (heads vs tp), L12 (layers vs pp·vpp),
//    L14 (interleaved micro-batches, g = pp). L13 (GBS mod B·DP) holds by construction: foldmoe
//    has no global-batch key, GBS = micro_batch·micro_batches·DP.
// The model-dependent rules use the sizes of `spec` (not of config.parallel), except
// sequence_parallel which comes from the config.
std::vector<std::string> layout_errors(const LayoutSpec& spec, const Config* model = nullptr);
// Throws one UserError listing every violation (a single one verbatim; several under a
// "N layout errors:" heading). Does nothing when the layout is valid.
void validate_layout(const LayoutSpec& spec, const Config* model = nullptr);

// Every group of spec 01 §3 as rank lists.
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

  // Where the ETP×EP group sits relative to the attention grid (spec 01 §2.5):
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
