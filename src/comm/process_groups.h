// The process groups a component may use (spec 01). Components receive this struct and use only
// the groups they need; nothing is global. On one process every group is the single-rank group.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace foldmoe {

struct ProcessGroups {
  // Attention grid.
  std::shared_ptr<Communicator> world, tp, cp, dp, pp, dp_cp, tp_cp, tp_pp, tp_dp_cp;
  // Expert grid.
  std::shared_ptr<Communicator> etp, ep, edp, etp_ep, etp_ep_pp;

  static ProcessGroups single_process();
};

}  // namespace foldmoe
