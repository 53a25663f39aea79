// `foldmoe plan` output: a table for people, JSON for programs (docs/planner.md §5 lists the keys).
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "plan/cluster.h"
#include "plan/layout.h"

namespace foldmoe::plan {

nlohmann::json prediction_json(const Prediction& p);
// The assumptions the numbers rest on (overlap, precision, cluster source), stated with every result.
nlohmann::json assumptions_json(const Cluster& c, const Workload& w);
std::string assumptions_text(const Cluster& c, const Workload& w);

std::string layout_name(const PlanLayout& l);
std::string prediction_table(const std::vector<Prediction>& ranked, bool details);

}  // namespace foldmoe::plan
