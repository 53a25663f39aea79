// A small model's complete training state for the checkpoint and async checkpoint tests: a dense arena (embedding,
// final norm) and an expert arena (two experts) with seeded weights and AdamW moments, one expert-bias buffer, the step
// (= seed), a config and extras.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "core/arena.h"
#include "core/rng.h"
#include "train/checkpoint.h"

namespace foldmoe::test_support {

inline ParamSpec spec(const std::string& name, Shape shape) {
  ParamSpec s;
  s.name = name;
  s.shape = std::move(shape);
  return s;
}

struct TinyTrainState {
  ParamArena dense{ArenaKind::Dense}, expert{ArenaKind::Expert};
  std::vector<float> md, vd, me, ve;
  train::TrainState state;

  explicit TinyTrainState(uint64_t seed, int64_t hidden = 8) {
    dense.add(spec("embedding.weight", {5, hidden}));
    dense.add(spec("final_norm.weight", {hidden}));
    expert.add(spec("layers.0.moe.experts.0.fc1", {6, hidden}));
    expert.add(spec("layers.0.moe.experts.1.fc1", {6, hidden}));
    dense.allocate();
    expert.allocate();
    dense.initialize(seed);
    expert.initialize(seed);
    const CounterRng rng(seed, "moments");
    uint64_t k = 0;
    for (auto* vec : {&md, &vd, &me, &ve}) {
      vec->resize(size_t(vec == &md || vec == &vd ? dense.total() : expert.total()));
      for (float& x : *vec) x = float(rng.normal(k++));
    }
    state.dense = &dense;
    state.expert = &expert;
    state.adam_m_dense = &md;
    state.adam_v_dense = &vd;
    state.adam_m_expert = &me;
    state.adam_v_expert = &ve;
    state.buffers["layers.0.moe.router.expert_bias"] = {float(seed), -0.25f};
    state.step = int64_t(seed);
    state.config_toml = "[model]\nhidden = " + std::to_string(hidden) + "\n";
    state.extra = {{"lr", 0.001 * double(seed)}};
  }
  TinyTrainState(const TinyTrainState&) = delete;
  TinyTrainState& operator=(const TinyTrainState&) = delete;
};

}  // namespace foldmoe::test_support
