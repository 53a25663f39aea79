// The process groups a component may use (docs/topology.md). Components receive this struct and use only
// the groups they need; nothing is global. On one process every group is the single-rank group.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace foldmoe {

// This rank's coordinates in the attention grid (tp, cp, dp, pp) and the expert grid
// (etp, ep, edp, pp); docs/topology.md §2.4. PP is the same in both grids (rule L5).
struct RankCoords {
  int tp = 0, cp = 0, dp = 0, pp = 0;
  int etp = 0, ep = 0, edp = 0;
  bool operator==(const RankCoords&) const = default;
};

// Sizes of every dimension of both grids (dp and edp derived).
struct ParallelSizes {
  int world = 1, tp = 1, cp = 1, dp = 1, pp = 1;
  int etp = 1, ep = 1, edp = 1;
  bool operator==(const ParallelSizes&) const = default;
};

struct ProcessGroups {
  // Attention grid.
  std::shared_ptr<Communicator> world, tp, cp, dp, pp, dp_cp, tp_cp, tp_pp, tp_dp_cp;
  // Expert grid (its pp groups are `pp`).
  std::shared_ptr<Communicator> etp, ep, edp, etp_ep, etp_ep_pp;
  // [first, last] stage of this rank's pp group (tied embeddings); [rank] when PP = 1. Null on
  // ranks of a middle pipeline stage, which belong to no embedding group.
  std::shared_ptr<Communicator> embedding;

  RankCoords coords;
  ParallelSizes sizes;

  static ProcessGroups single_process();
  // Sum of the traffic statistics of every distinct communicator above.
  CommStats comm_stats() const;
  void reset_comm_stats();
};

}  // namespace foldmoe
