// The machine a layout is planned for (docs/planner.md §2): devices per node, peak throughput,
// memory, the two link levels (inside a node, across nodes) and the achieved efficiencies of the
// calibration table. Read from a cluster TOML file or a built-in preset (cluster_presets.cpp).
#pragma once

#include <string>

namespace foldmoe::plan {

struct Cluster {
  std::string name = "custom";
  std::string backend = "cuda";  // cuda | cpu (cpu: fp32 weights and activations, foldmoe's own memory layout)
  int devices_per_node = 8;
  double peak_flops = 989.5e12;     // dense peak of one device at the training precision (FLOP/s)
  double peak_flops_fp8 = 1979e12;  // with --precision fp8 (0 = no fp8)
  double memory_bytes = 80.0 * (1ull << 30);
  double memory_bw = 3.35e12;  // device memory bandwidth (bytes/s), for memory-bound kernels
  // CPU backend: cores a node's ranks share (0 = every device computes on its own). With more ranks
  // than cores on a node, each rank gets cores/ranks of peak_flops and memory_bw.
  double shared_cores = 0;
  // Links: bandwidth per device and direction (bytes/s) and the latency of one message (s).
  double intra_bw = 450e9, intra_latency = 3e-6;
  double inter_bw = 50e9, inter_latency = 6e-6;
  // Calibration: achieved fraction of peak.
  double gemm_efficiency = 0.75;     // a large GEMM
  double gemm_fp8_efficiency = 0.6;  // a large fp8 GEMM, fraction of peak_flops_fp8
  double fp8_cast_passes = 8;        // extra memory-bound passes (quantisation, amax) per token and layer with fp8
  double gemm_half_dim = 128;        // a GEMM dimension x costs efficiency by the factor x / (x + half_dim)
  double attention_efficiency = 0.5;
  double intra_efficiency = 0.8;     // collectives over the intra-node link (bus bandwidth / link bandwidth)
  double inter_efficiency = 0.8;     // over the network
  double alltoall_efficiency = 0.6;  // extra factor of all-to-all (many small messages)
  // Extra factor of all-reduce relative to two ring passes at the collective efficiency: 1 for NCCL's
  // ring; below 1 for foldmoe's MPI all-reduce, which all-gathers every member's data and sums it in
  // member order (deterministic) — (n−1)·bytes received per rank instead of 2·(n−1)/n·bytes.
  double allreduce_efficiency = 1.0;
  // Memory-bound work per token and layer, in units of hidden-size activations moved (norms, residuals,
  // activation functions, rotary embedding, the MoE permutation per routed copy).
  double elementwise_passes = 40;
  double permute_passes = 8;
  // Memory: bytes the runtime keeps per device (context, library workspaces, collective buffers) and
  // the fragmentation margin added on top of what tensors need.
  double reserved_bytes = 4.0 * (1ull << 30);
  double fragmentation = 0.10;
  // Overlap assumptions (fraction of the communication hidden behind computation, 0..1).
  double overlap_dp = 1.0;  // gradient reduce-scatter / parameter all-gather behind the last backward / first forward
  double overlap_cp = 1.0;  // context-parallel ring behind the attention kernels
  double overlap_tp = 0.0;  // TP/SP all-gather and reduce-scatter behind GEMMs
  double overlap_ep = 0.0;  // expert all-to-all behind other work
  // Fixed time per step outside the layers (optimizer, launch, synchronisation), seconds.
  double step_overhead_s = 0.0;
  std::string source;  // where the numbers came from (printed with the result)
};

// A cluster from TOML text (the format of docs/planner.md §2); UserError naming unknown keys or bad values.
Cluster cluster_from_toml(const std::string& text, const std::string& source);
// `preset:NAME` or a TOML file path.
Cluster load_cluster(const std::string& arg);
// TOML text that cluster_from_toml reads back to the same cluster.
std::string cluster_to_toml(const Cluster& c);

// The built-in presets' TOML text (the shipped calibration table), "" when there is no such preset.
std::string cluster_preset_text(const std::string& name);
std::string cluster_preset_names();

}  // namespace foldmoe::plan
