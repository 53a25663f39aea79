// Parameters one rank holds, by kind, for a model under a layout (the same sharding as
// parallel/sharding: attention and shared experts over TP, experts over EP and ETP, embedding and
// output layer over TP on the first and last pipeline stage).
#pragma once

#include "config/config.h"
#include "plan/layout.h"

namespace foldmoe::plan {

struct RankParams {
  double dense = 0;   // attention, norms, router, shared expert, dense MLP; embedding/head where held
  double expert = 0;  // routed experts
};

// Parameters of one rank of pipeline stage `stage` (0 = first).
RankParams rank_params(const Config& m, const PlanLayout& l, int stage);
// Layers of pipeline stage `stage` (the even split unless l.pipeline_layers says otherwise).
int layers_of_stage(const Config& m, const PlanLayout& l, int stage);
// Number of MoE layers among the model's layers (their share on a stage is the same ratio).
double moe_layer_fraction(const Config& m);

}  // namespace foldmoe::plan
