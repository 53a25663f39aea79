// The layout search of `foldmoe plan` without layout flags (docs/planner.md §3.4): every layout the
// topology rules (L1–L14) accept for the model and world size, over TP (within a node), CP, PP with
// interleaving, EP, ETP, micro-batch size, recomputation and the distributed optimizer; ranked by
// predicted throughput among those that fit.
#pragma once

#include <vector>

#include "config/config.h"
#include "plan/cluster.h"
#include "plan/layout.h"

namespace foldmoe::plan {

struct SearchResult {
  std::vector<Prediction> ranked;  // fitting layouts, fastest first
  int evaluated = 0, valid = 0, fitting = 0;
};

SearchResult search_layouts(const Config& model, const Workload& w, const Cluster& c);

// The topology rules for one layout of a plan ("" when valid, else the layout errors, one per line).
std::string plan_layout_errors(const Config& model, const Workload& w, const PlanLayout& l);

// `model` with the workload's and layout's run settings (what the layout rules read).
Config with_run(const Config& model, const Workload& w, const PlanLayout& l);

}  // namespace foldmoe::plan
