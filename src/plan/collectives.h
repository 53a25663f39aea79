// Latency–bandwidth cost of the collectives, with the algorithm NCCL and Open MPI use for large
// messages (docs/planner.md §3.3): ring all-gather / reduce-scatter / all-reduce, pairwise all-to-all
// whose intra-node and inter-node parts run at the same time, point-to-point. A ring that crosses
// nodes runs at the network rate (one NIC per device: the ring's slowest hop).
#pragma once

#include "plan/cluster.h"
#include "plan/links.h"

namespace foldmoe::plan {

// `bytes`: the full (gathered) buffer for all-gather / reduce-scatter / all-reduce; what one rank
// sends in total for all-to-all; the message for send/recv.
double allgather_time(const Cluster& c, const GroupSpan& g, double bytes);
double reduce_scatter_time(const Cluster& c, const GroupSpan& g, double bytes);
double allreduce_time(const Cluster& c, const GroupSpan& g, double bytes);
double alltoall_time(const Cluster& c, const GroupSpan& g, double bytes);
double p2p_time(const Cluster& c, bool crosses_nodes, double bytes);

}  // namespace foldmoe::plan
