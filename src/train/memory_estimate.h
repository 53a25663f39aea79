// Per-stage layer placement and a memory estimate for a model under a layout (`foldmoe topology
// --config`): what a user checks before launching a large job.
//
// Parameters are counted exactly, by registering the stage's layers with the real sharding code
// against placeholder process groups of the layout's sizes (nothing is allocated or sent). Bytes:
// fp32 weights + fp32 gradients + AdamW m and v (sharded over dp·cp / edp with the distributed
// optimizer). Activations are an estimate: the fp32 tensors the forward caches for the backward,
// per layer and micro-batch, times the micro-batches the stage's schedule holds in flight at once
// (docs/pipeline.md §6.3–6.4), with recomputation keeping only what train.recompute keeps, plus once
// the buffers the MoE layers lend while they combine and run their backward. Routing is assumed
// balanced: a rank whose experts receive more rows (dropless routing) holds more.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/process_groups.h"
#include "config/config.h"

namespace foldmoe {

struct StageMemory {
  int stage = 0;
  std::vector<std::vector<int>> chunk_layers;  // [chunk] -> global layer indices
  bool embedding = false, head = false;
  int micro_batches_in_flight = 0;  // most (micro-batch, chunk) pairs between forward and backward
  int64_t dense_params = 0, expert_params = 0;  // on one rank of the stage
  double weight_bytes = 0, grad_bytes = 0, optimizer_bytes = 0;
  double activation_bytes = 0;  // peak, estimate
  double total_bytes() const { return weight_bytes + grad_bytes + optimizer_bytes + activation_bytes; }
};

// cfg.model.vocab must be resolved; sizes from a valid Topology (dp, edp derived). One entry per
// pipeline stage (every rank of a stage holds the same amounts).
std::vector<StageMemory> estimate_stage_memory(const Config& cfg, const ParallelSizes& sizes);

// Activation bytes of one layer for one micro-batch on one rank (the estimate's unit).
double layer_activation_bytes(const Config& cfg, const ParallelSizes& sizes, int layer);

}  // namespace foldmoe
