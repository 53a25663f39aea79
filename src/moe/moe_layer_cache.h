// The activation cache of one MoELayer forward (router outputs, masks, dispatch state, expert and
// shared-expert caches). Private to moe_layer.cpp; tests include it to inspect routing decisions.
#pragma once

#include <cstdint>
#include <vector>

#include "moe/dispatcher.h"
#include "moe/experts.h"
#include "moe/moe_layer.h"
#include "moe/shared_expert.h"

namespace foldmoe {

struct MoELayer::Cache {
  int64_t N = 0, E = 0;
  bool training = false, jitter = false;
  bool released = false;  // activations freed after the forward (recompute in backward)
  MoEStepContext ctx;     // of the forward (pointers into the caller's micro-batch)
  std::vector<float> x_NH, u_NH, xr_NH;            // input copy, jitter multipliers, router input
  std::vector<float> logits_NE, probs_NE, saved_NE, final_probs_NE, daux_NE;
  std::vector<uint8_t> map_NE, final_map_NE, kept_NE, auxmap_NE;
  std::vector<float> dprobs_NE, dlogits_NE, dxr_NH;
  moe::DispatchState ds;
  moe::ExpertCache ec;
  moe::SharedCache sc;
};

}  // namespace foldmoe
