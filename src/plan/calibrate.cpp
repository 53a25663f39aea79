#include "plan/calibrate.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <thread>
#include <vector>

#include "core/memory_usage.h"
#include "core/timer.h"
#include "ops/attention.h"
#include "ops/linear.h"
#include "train/flops.h"

namespace foldmoe::plan {
namespace {

// Best of `reps` timings of f (seconds).
template <typename F>
double best_time(int reps, F&& f) {
  f();  // warm-up
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    Stopwatch w;
    f();
    best = std::min(best, w.seconds());
  }
  return best;
}

// Best of several timings: on a machine other jobs share, the fastest run is the machine's own speed.
double gemm_flops(int64_t m, int64_t n, int64_t k, int reps = 5) {
  std::vector<float> a(size_t(m * k), 0.5f), b(size_t(k * n), 0.25f), c(size_t(m * n), 0.0f);
  const double t = best_time(
      reps, [&] { ops::gemm<float>(false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c.data(), n); });
  return 2.0 * double(m) * double(n) * double(k) / t;
}

// Bytes per second of a large copy (read + write counted).
double copy_bandwidth() {
  const size_t n = size_t(64) << 20;
  std::vector<char> a(n, 1), b(n, 0);
  const double t = best_time(5, [&] { std::memcpy(b.data(), a.data(), n); });
  return 2.0 * double(n) / t;
}

// Achieved FLOP/s of the causal attention kernel forward + backward, counted like Megatron (3× the
// forward's 2·S·S·D·A causal FLOPs).
double attention_flops() {
  const ops::AttentionShape s{.S = 256, .B = 2, .A = 8, .G = 4, .D = 32};
  const size_t q = size_t(s.S * s.B * s.A * s.D), kv = size_t(s.S * s.B * s.G * s.D);
  std::vector<float> Q(q, 0.01f), K(kv, 0.02f), Vv(kv, 0.03f), O(q), dO(q, 0.1f), dQ(q), dK(kv), dV(kv);
  std::vector<float> lse(size_t(s.B * s.A * s.S));
  const double t = best_time(3, [&] {
    ops::attention_forward<float>(Q.data(), K.data(), Vv.data(), O.data(), lse.data(), s);
    ops::attention_backward<float>(Q.data(), K.data(), Vv.data(), O.data(), lse.data(), dO.data(), dQ.data(), dK.data(),
                                   dV.data(), s);
  });
  return 3.0 * 2.0 * double(s.S) * double(s.S) * double(s.D) * double(s.A) * double(s.B) / t;
}

}  // namespace

Cluster calibrate_cpu() {
  Cluster c;
  c.name = "cpu-calibrated";
  c.backend = "cpu";
  // The memory a rank holds beyond its tensors: this process (code, the runtime, OpenBLAS's buffers,
  // which its first sgemm allocates), read before the measurements below allocate their own buffers.
  gemm_flops(256, 256, 256, 1);
  const double baseline_rss = double(peak_rss_bytes());
  c.peak_flops = std::max(measure_peak_flops(), gemm_flops(1024, 1024, 1024, 10));
  c.peak_flops_fp8 = 0;
  c.gemm_efficiency = std::min(1.0, gemm_flops(1024, 1024, 1024) / c.peak_flops);
  // Fall-off with one small dimension: eff(x) / eff(large) = x / (x + half_dim).
  double half = 0;
  int count = 0;
  for (int x : {16, 32, 64}) {
    const double r = std::min(0.999, gemm_flops(x, 512, 512) / gemm_flops(512, 512, 512));
    half += x * (1 / r - 1) / (512.0 / (512.0 + 0)), ++count;
  }
  c.gemm_half_dim = std::max(0.0, half / count);
  c.attention_efficiency = std::min(1.0, attention_flops() / c.peak_flops);
  c.memory_bw = copy_bandwidth();
  // Ranks of one machine exchange messages through shared memory: a copy into and out of the
  // shared segment, so about half the copy bandwidth per direction.
  c.devices_per_node = 1024;
  c.intra_bw = c.memory_bw / 2, c.intra_latency = 5e-6, c.intra_efficiency = 1.0;
  c.inter_bw = c.intra_bw, c.inter_latency = c.intra_latency, c.inter_efficiency = 1.0;
  c.alltoall_efficiency = 1.0;
  c.shared_cores = std::max(1u, std::thread::hardware_concurrency());
  c.memory_bytes = 1e15;
  c.reserved_bytes = baseline_rss;
  c.fragmentation = 0.0;
  c.overlap_dp = 0, c.overlap_cp = 0, c.overlap_tp = 0, c.overlap_ep = 0;
  c.elementwise_passes = 40, c.permute_passes = 8;
  c.source = fmt::format(
      "foldmoe plan --calibrate on this machine ({} cores): sgemm, attention and copy timed; "
      "collectives not measured (one process): links assumed at half the copy bandwidth, 5 us, efficiencies 1",
      c.shared_cores);
  return c;
}

}  // namespace foldmoe::plan
