// The rules of the [rl] section (docs/rules.md: V1 ranges, R1–R6 relations). They run when an RL
// run starts, because some need facts about the model and the launch.
#pragma once

#include "config/problems.h"
#include "config/rl_section.h"

namespace foldmoe::rl {

// Facts about the rest of the run that some RL rules need.
struct RlRunFacts {
  bool model_is_moe = false;
  bool moe_has_capacity_factor = false;  // moe.capacity_factor set and > 0
  bool has_reference_checkpoint = false;
  int data_parallel = 1;  // DP ranks sharing each mini-batch
  int64_t max_seq_len = 0;  // the model's context, [model] max_seq_len (0 = not checked)
};

Problems rl_config_problems(const RlConfig& c, const RlRunFacts& facts = {});
// Throws one UserError listing every violation.
void validate_rl_config(const RlConfig& c, const RlRunFacts& facts = {});

}  // namespace foldmoe::rl
