// `foldmoe plan --calibrate` (docs/planner.md §4.1): measures this machine's CPU backend — sgemm
// throughput and its fall-off with small dimensions, the attention kernel, memory bandwidth,
// message passing between ranks through shared memory — and returns a cluster whose every number
// came from a measurement here (or is stated as a default in its source line).
#pragma once

#include "plan/cluster.h"

namespace foldmoe::plan {

Cluster calibrate_cpu();

}  // namespace foldmoe::plan
