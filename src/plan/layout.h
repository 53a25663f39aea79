// One candidate layout of a plan and what the planner predicts for it.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace foldmoe::plan {

struct PlanLayout {
  int tp = 1, cp = 1, pp = 1, vpp = 1, ep = 1, etp = 1;
  int dp = 1, edp = 1;  // derived: world / (tp·cp·pp), world / (etp·ep·pp)
  int micro_batch = 1;
  std::string recompute = "none";  // none | moe | full
  bool distributed_optimizer = true;
  std::string order = "tp-cp-ep-dp-pp";
  // Layers per pipeline stage when the planner moves layers off the stage that holds the output
  // layer (without interleaving); empty = the even split. What [parallel] pipeline_layers would say.
  std::vector<int> pipeline_layers;
};

// The workload: model-independent run settings.
struct Workload {
  int gpus = 1;
  int global_batch = 1;  // sequences per step
  int seq = 1;
  std::string precision = "bf16";  // bf16 | fp8 (cuda) ; fp32 on the cpu backend
};

struct Prediction {
  PlanLayout layout;
  bool fits = false;
  double memory_bytes = 0;               // per device, the fullest pipeline stage, margins included
  std::map<std::string, double> memory;  // its parts (bytes)
  double step_time_s = 0;
  std::map<std::string, double> time;  // parts of the step time (s): compute.*, comm.*, bubble, ...
  double tokens_per_s_per_gpu = 0;
  double mfu = 0;     // Megatron's FLOP formula over the cluster's peak
  std::string links;  // which link each group uses, e.g. "tp:intra ep:inter"
};

}  // namespace foldmoe::plan
