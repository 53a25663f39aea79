// The calibration table shipped with foldmoe: the built-in cluster presets, in the cluster file
// format, each number with where it came from (docs/planner.md §4 explains the choices).
//
// Hardware facts are the vendors' published specifications. The efficiencies (achieved fraction of
// peak) are ONE set for the whole cluster, not per model or layout: they were set once so that the
// planner's MFU for the paper's (arXiv 2504.14960) Table 1 MCore rows on NVIDIA Eos comes out right
// on average, and are held to published microbenchmark ranges (cuBLAS bf16 GEMM on H100 reaches
// 600-800 TFLOP/s, i.e. 0.6-0.8 of 989.5; FlashAttention-2/3 forward+backward 0.35-0.6 of peak;
// nccl-tests bus bandwidth 0.7-0.85 of the link rate). The paper's folded rows and mappings are the
// held-out check (tests/e2e/test_plan.py).
#include <fmt/format.h>

#include <map>
#include <string>

#include "plan/cluster.h"

namespace foldmoe::plan {
namespace {

// One DGX node generation: the hardware facts differ, the calibration is shared.
std::string dgx(const char* name, double memory_gib, double memory_tb_s, const char* device_source) {
  std::string t = std::string("[cluster]\nname = \"") + name + "\"\nbackend = \"cuda\"\n" +
                  "source = \"foldmoe calibration table (src/plan/cluster_presets.cpp)\"\n";
  t += R"(
[device]
per_node = 8                 # DGX H100/H200: 8 GPUs per node (NVIDIA DGX datasheet)
peak_tflops = 989.5          # dense bf16 tensor-core peak of H100/H200 SXM (NVIDIA datasheet; the paper's MFU denominator)
peak_tflops_fp8 = 1979       # dense fp8 peak (NVIDIA datasheet)
)";
  t += "memory_gib = " + fmt::format("{}", memory_gib) + "   # " + device_source + "\n";
  t += "memory_bw_gb_s = " + fmt::format("{}", memory_tb_s * 1000) + "   # HBM bandwidth, " + device_source + "\n";
  t += R"(
[links]
intra_node_gb_s = 450        # NVLink 4, 900 GB/s bidirectional = 450 GB/s per direction (NVIDIA datasheet)
intra_node_latency_us = 3    # NCCL small-message latency inside a node (nccl-tests, order of magnitude)
inter_node_gb_s = 50         # one 400 Gb/s InfiniBand NDR NIC per GPU = 50 GB/s per direction (DGX datasheet)
inter_node_latency_us = 8    # NCCL latency across IB (nccl-tests, order of magnitude)

[efficiency]
gemm = 0.68                  # large bf16 GEMM: ~670 TFLOP/s on H100 SXM (cuBLAS benchmarks: 600-750; calibrated once)
gemm_fp8 = 0.50              # fp8 GEMMs of a training step with Transformer Engine's delayed scaling: ~990 of 1,979
                             # TFLOP/s, 1.45x the bf16 rate (published end-to-end GEMM gains of fp8: 1.3-1.6x)
fp8_cast_passes = 8          # fp8 quantisation and amax passes per token and layer, in hidden-size units
gemm_half_dim = 96           # a dimension of x elements keeps x/(x+96) of it (tile quantisation, wave tails)
attention = 0.42             # causal flash attention fwd+bwd, head dim 128 (FlashAttention-2 on H100: 0.35-0.5)
intra_node_collective = 0.80 # NCCL ring bus bandwidth over NVLink (nccl-tests: ~360 GB/s of 450)
inter_node_collective = 0.80 # NCCL ring bus bandwidth over IB (nccl-tests: ~40 GB/s of 50)
alltoall = 0.55              # NVLink all-to-all (many small pairwise messages) reaches about half the ring bus
                             # bandwidth (nccl-tests alltoall_perf); across nodes the NIC streams at the ring rate
elementwise_passes = 40      # norms, residuals, rotary, SwiGLU, dropout-free bf16 traffic per token, in hidden-size units
permute_passes = 24          # unfused MoE permutation: gather, pack, probability scaling, unpack, scatter-add,
                             # forward and backward, per routed copy (hidden-size units)

[memory]
reserved_gib = 3             # CUDA context, cuBLAS/cuDNN workspaces, NCCL buffers (typical nvidia-smi floor)
fragmentation = 0.05         # PyTorch caching-allocator margin on what tensors need (expandable segments)

[overlap]
dp = 1.0                     # Megatron --overlap-grad-reduce / --overlap-param-gather
cp = 1.0                     # ring attention overlaps the KV exchange with the attention kernel
tp = 0.0                     # no TP communication overlap assumed
ep = 0.0                     # no expert all-to-all overlap assumed (the paper's setting)
step_overhead_ms = 0         # optimizer step is modelled; nothing else fixed
)";
  return t;
}

const std::map<std::string, std::string>& presets() {
  static const std::map<std::string, std::string> p = {
      {"dgx-h100", dgx("dgx-h100", 79.6, 3.35,
                       "H100 SXM 80 GB HBM3 = 81,559 MiB as CUDA reports it, 3.35 TB/s (NVIDIA datasheet)")},
      {"dgx-h200", dgx("dgx-h200", 140.4, 4.8,
                       "H200 SXM 141 GB HBM3e = 143,771 MiB as CUDA reports it, 4.8 TB/s (NVIDIA datasheet)")},
  };
  return p;
}

}  // namespace

std::string cluster_preset_text(const std::string& name) {
  const auto it = presets().find(name);
  return it == presets().end() ? "" : it->second;
}

std::string cluster_preset_names() {
  std::string out;
  for (const auto& [name, _] : presets()) out += (out.empty() ? "preset:" : ", preset:") + name;
  return out;
}

}  // namespace foldmoe::plan
