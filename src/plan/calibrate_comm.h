// `foldmoe plan --calibrate` under mpirun (docs/planner.md §4.1): times foldmoe's own collectives
// between the ranks of this launch (point-to-point at a small and a large size; all-gather,
// all-reduce and all-to-all at the large size) and turns them into the intra-node link fields of a cluster file. All
// ranks share one node here, so the inter-node fields get the same values (the file says so).
#pragma once

#include <string>

#include "comm/communicator.h"
#include "plan/cluster.h"

namespace foldmoe::plan {

struct CommCalibration {
  int ranks = 0;
  double latency_s = 0;       // one small message, one way (ping-pong between ranks 0 and 1)
  double bandwidth = 0;       // bytes/s of one large message, one way
  double collective_eff = 0;  // ring all-gather model's bandwidth / the point-to-point bandwidth
  double allreduce_eff = 0;   // all-reduce model's bandwidth / (bandwidth · collective_eff)
  double alltoall_eff = 0;    // all-to-all model's bandwidth / (bandwidth · collective_eff)
  std::string summary;        // the measured times, for the cluster file's source line
};

// Collective over `world` (size >= 2); every rank gets the same result.
CommCalibration measure_collectives(Communicator& world);

// Writes the measurement into the link fields of c (intra and, on one node, inter).
void apply(const CommCalibration& m, Cluster& c);

}  // namespace foldmoe::plan
