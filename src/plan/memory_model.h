// Memory per device for a layout (docs/planner.md §3.1): weights, gradients, optimizer state,
// activations of the micro-batches the pipeline schedule keeps in flight, communication buffers,
// the runtime's reserved memory and a fragmentation margin. The fullest stage counts.
//  - cuda backend: Megatron's mixed precision: bf16 weights (fp8 adds no bytes: its copies are
//    transient), fp32 gradients, fp32 master weights and AdamW moments (sharded over the data-parallel
//    group with the distributed optimizer), bf16 activations saved for the backward.
//  - cpu backend: foldmoe's own estimate (train/memory_estimate.h), counted exactly.
#pragma once

#include <map>
#include <string>

#include "config/config.h"
#include "plan/cluster.h"
#include "plan/layout.h"

namespace foldmoe::plan {

struct MemoryEstimate {
  double total = 0;                     // bytes per device, margins included
  std::map<std::string, double> parts;  // weights, gradients, optimizer, activations, buffers, reserved, fragmentation
};

// Activation bytes one rank saves for the backward per layer and micro-batch (averaged over layer kinds).
double layer_activation_bytes_cuda(const Config& m, const PlanLayout& l, int seq);

MemoryEstimate estimate_memory(const Config& m, const PlanLayout& l, const Cluster& c, int seq, int micro_batches);

}  // namespace foldmoe::plan
