#include "comm/process_groups.h"

#include <set>

namespace foldmoe {

ProcessGroups ProcessGroups::single_process() {
  ProcessGroups g;
  std::shared_ptr<Communicator> one = make_single_rank_communicator("single");
  g.world = g.tp = g.cp = g.dp = g.pp = g.dp_cp = g.tp_cp = g.tp_pp = g.tp_dp_cp = one;
  g.etp = g.ep = g.edp = g.etp_ep = g.etp_ep_pp = one;
  g.embedding = one;
  return g;
}

namespace {
template <typename Fn>
void for_each_distinct(const ProcessGroups& g, Fn&& fn) {
  std::set<Communicator*> seen;
  for (const auto* c : {&g.world, &g.tp, &g.cp, &g.dp, &g.pp, &g.dp_cp, &g.tp_cp, &g.tp_pp, &g.tp_dp_cp, &g.etp,
                        &g.ep, &g.edp, &g.etp_ep, &g.etp_ep_pp, &g.embedding})
    if (*c && seen.insert(c->get()).second) fn(**c);
}
}  // namespace

CommStats ProcessGroups::comm_stats() const {
  CommStats total;
  for_each_distinct(*this, [&](Communicator& c) { total += c.stats(); });
  return total;
}

void ProcessGroups::reset_comm_stats() {
  for_each_distinct(*this, [](Communicator& c) { c.reset_stats(); });
}

}  // namespace foldmoe
