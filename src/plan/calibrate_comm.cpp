#include "plan/calibrate_comm.h"

#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "core/timer.h"

namespace foldmoe::plan {
namespace {

constexpr int64_t kSmall = 2;        // floats: a message whose time is its latency
constexpr int64_t kLarge = 1 << 20;  // floats (4 MiB): a message whose time is its bandwidth
constexpr int kTries = 3;            // the best of a few tries (other jobs share the machine)

// Seconds per call of f on every rank (the slowest rank's mean over reps calls), best of kTries.
template <typename F>
double collective_time(Communicator& world, int reps, F&& f) {
  f();  // warm-up: connections, buffers
  double best = 1e30;
  for (int t = 0; t < kTries; ++t) {
    world.barrier();
    Stopwatch w;
    for (int r = 0; r < reps; ++r) f();
    double s = w.seconds() / reps;
    world.all_reduce(&s, 1, ReduceOp::Max);
    best = std::min(best, s);
  }
  return best;
}

// One-way time of an n-float message between ranks 0 and 1 (half a round trip); others idle.
double one_way(Communicator& world, int64_t n, int reps) {
  std::vector<float> buf(size_t(n), 1.0f);
  const int me = world.rank();
  return collective_time(world, reps,
                         [&] {
                           if (me == 0) {
                             world.send(buf.data(), n, 1, 7);
                             world.recv(buf.data(), n, 1, 8);
                           } else if (me == 1) {
                             world.recv(buf.data(), n, 0, 7);
                             world.send(buf.data(), n, 0, 8);
                           }
                         }) /
         2;
}

// An all-gather in which every rank receives n floats in total.
double allgather(Communicator& world, int64_t n, int reps) {
  const int64_t block = std::max<int64_t>(1, n / world.size());
  std::vector<float> send(size_t(block), 1.0f), recv(size_t(block * world.size()));
  return collective_time(world, reps, [&] { world.all_gather(send.data(), recv.data(), block); });
}

double allreduce(Communicator& world, int64_t n, int reps) {
  std::vector<float> buf(size_t(n), 1.0f);
  return collective_time(world, reps, [&] { world.all_reduce(buf.data(), n); });
}

// An all-to-all in which every rank sends n floats in total, split evenly over the ranks.
double alltoall(Communicator& world, int64_t n, int reps) {
  const int W = world.size();
  const int64_t block = std::max<int64_t>(1, n / W);
  std::vector<float> send(size_t(block * W), 1.0f), recv(size_t(block * W));
  const std::vector<int64_t> counts(size_t(W), block);
  return collective_time(world, reps, [&] { world.all_to_all_v(send.data(), counts, recv.data(), counts); });
}

}  // namespace

CommCalibration measure_collectives(Communicator& world) {
  CommCalibration m;
  m.ranks = world.size();
  const double n = m.ranks;
  const double small = one_way(world, kSmall, 200), large = one_way(world, kLarge, 10);
  m.latency_s = small;
  m.bandwidth = 4.0 * kLarge / std::max(1e-9, large - small);
  // The planner's models (plan/collectives.cpp), solved for their efficiency at the large size:
  // all-gather (n−1)·α + (n−1)/n · bytes / (bw·eff); all-reduce twice that, over allreduce_eff;
  // all-to-all (n−1)·α + (n−1)/n · bytes / (bw·eff·a2a).
  const double ag_large = allgather(world, kLarge, 5);
  const double ar_small = allreduce(world, kSmall, 100), ar_large = allreduce(world, kLarge, 5);
  const double a2a_large = alltoall(world, kLarge, 5);
  const double bytes = 4.0 * kLarge, share = (n - 1) / n, alpha = (n - 1) * m.latency_s;
  const double ag_bw = share * bytes / std::max(1e-9, ag_large - alpha);
  m.collective_eff = std::clamp(ag_bw / m.bandwidth, 1e-4, 1.0);
  const double ar_bw = 2 * share * bytes / std::max(1e-9, ar_large - 2 * alpha);
  m.allreduce_eff = std::clamp(ar_bw / (m.bandwidth * m.collective_eff), 1e-4, 1.0);
  const double a2a_bw = share * bytes / std::max(1e-9, a2a_large - alpha);
  m.alltoall_eff = std::clamp(a2a_bw / (m.bandwidth * m.collective_eff), 1e-4, 1.0);
  m.summary = fmt::format(
      "MPI collectives timed between {} ranks of this machine (foldmoe's communicator): one-way 8 B {:.1f} us, "
      "4 MiB {:.2f} ms; all-gather 4 MiB {:.2f} ms; all-reduce 8 B {:.1f} us, 4 MiB {:.2f} ms; all-to-all 4 MiB "
      "{:.2f} ms (efficiencies above 1 clamped to 1)",
      m.ranks, small * 1e6, large * 1e3, ag_large * 1e3, ar_small * 1e6, ar_large * 1e3, a2a_large * 1e3);
  return m;
}

void apply(const CommCalibration& m, Cluster& c) {
  c.intra_latency = m.latency_s, c.intra_bw = m.bandwidth;
  c.intra_efficiency = m.collective_eff, c.alltoall_efficiency = m.alltoall_eff;
  c.allreduce_efficiency = m.allreduce_eff;
  // All ranks of the measurement share one machine: the network fields repeat the node's link.
  c.inter_latency = c.intra_latency, c.inter_bw = c.intra_bw, c.inter_efficiency = c.intra_efficiency;
}

}  // namespace foldmoe::plan
