#include "plan/collectives.h"

#include <algorithm>

namespace foldmoe::plan {
namespace {

double ring_bw(const Cluster& c, const GroupSpan& g) {
  return g.crosses_nodes() ? c.inter_bw * c.inter_efficiency : c.intra_bw * c.intra_efficiency;
}
double latency(const Cluster& c, const GroupSpan& g) {
  return g.crosses_nodes() ? c.inter_latency : c.intra_latency;
}

}  // namespace

double allgather_time(const Cluster& c, const GroupSpan& g, double bytes) {
  if (g.size <= 1 || bytes <= 0) return 0;
  const double n = g.size;
  return (n - 1) * latency(c, g) + (n - 1) / n * bytes / ring_bw(c, g);
}

double reduce_scatter_time(const Cluster& c, const GroupSpan& g, double bytes) {
  return allgather_time(c, g, bytes);
}

double allreduce_time(const Cluster& c, const GroupSpan& g, double bytes) {
  if (g.size <= 1 || bytes <= 0) return 0;
  const double n = g.size;
  return 2 * ((n - 1) * latency(c, g) + (n - 1) / n * bytes / (ring_bw(c, g) * c.allreduce_efficiency));
}

double alltoall_time(const Cluster& c, const GroupSpan& g, double bytes) {
  if (g.size <= 1 || bytes <= 0) return 0;
  const double n = g.size;
  const double intra_bytes = bytes * (g.ranks_per_node - 1) / n, inter_bytes = bytes * (n - g.ranks_per_node) / n;
  // Inside a node every pair exchanges its own small messages over NVLink: the all-to-all efficiency.
  // Across nodes the device's NIC is the bottleneck and streams at the network's collective rate.
  const double t_intra = intra_bytes / (c.intra_bw * c.intra_efficiency * c.alltoall_efficiency);
  const double t_inter = inter_bytes / (c.inter_bw * c.inter_efficiency);
  return (n - 1) * latency(c, g) + std::max(t_intra, t_inter);
}

double p2p_time(const Cluster& c, bool crosses_nodes, double bytes) {
  if (bytes <= 0) return 0;
  return crosses_nodes ? c.inter_latency + bytes / (c.inter_bw * c.inter_efficiency)
                       : c.intra_latency + bytes / (c.intra_bw * c.intra_efficiency);
}

}  // namespace foldmoe::plan
