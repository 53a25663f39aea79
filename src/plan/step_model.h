// Predicted step time of a layout (docs/planner.md §3.2): per micro-batch and pipeline stage, the
// GEMMs by layer type and the attention kernel at the calibrated efficiencies, memory-bound work at
// the memory bandwidth, the exposed communication of every dimension; then the pipeline schedule
// (steady state plus the bubble of (pp-1)/vpp stage times), the data-parallel gradient reduction not
// hidden behind the last backward, and the optimizer step. MFU uses Megatron's FLOP formula.
#pragma once

#include "config/config.h"
#include "plan/cluster.h"
#include "plan/layout.h"

namespace foldmoe::plan {

// Fills layout.dp/edp from the world size. Memory and time of `l`; the layout must be valid
// (layout_rules) and global_batch divisible by micro_batch·dp.
Prediction predict(const Config& model, const Workload& w, PlanLayout l, const Cluster& c);

// Megatron's FLOPs per token of a model at sequence length `seq` (train/flops.h).
double flops_per_token(const Config& model, int seq);

}  // namespace foldmoe::plan
