#include "comm/process_groups.h"

namespace foldmoe {

ProcessGroups ProcessGroups::single_process() {
  ProcessGroups g;
  std::shared_ptr<Communicator> one = make_single_rank_communicator("single");
  g.world = g.tp = g.cp = g.dp = g.pp = g.dp_cp = g.tp_cp = g.tp_pp = g.tp_dp_cp = one;
  g.etp = g.ep = g.edp = g.etp_ep = g.etp_ep_pp = one;
  return g;
}

}  // namespace foldmoe
