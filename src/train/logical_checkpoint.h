// A distributed model's checkpoint in logical (unsharded) form, shared by the pretraining and RL
// trainers: saves gather every rank's shards (and every pipeline stage's buffers) to world rank 0,
// which writes; loads read the whole checkpoint on every rank and keep its shards. Both are
// collective over the world, so any layout loads any checkpoint.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "comm/process_groups.h"
#include "model/model.h"
#include "train/async_checkpoint.h"

namespace foldmoe {

// AdamW moments in the local arenas' shapes (each arena.total() long).
struct LocalMoments {
  std::vector<float> m_dense, v_dense, m_expert, v_expert;
};

// Expert-bias buffers of every pipeline stage, merged (collective over `pp`).
std::map<std::string, std::vector<float>> all_stage_buffers(Model& model, const ProcessGroups& groups);

// moments null: a weights-only checkpoint. With `async` (used on world rank 0 only), the gathered
// state is handed to it as a snapshot and written in the background; the gather stays collective.
void save_logical_checkpoint(const std::string& dir, Model& model, const ProcessGroups& groups,
                             const LocalMoments* moments, int64_t step, const std::string& config_toml,
                             const nlohmann::json& extra, train::AsyncCheckpointWriter* async = nullptr);

struct LoadedCheckpoint {
  int64_t step = 0;
  nlohmann::json extra;
};
// Restores the parameters and buffers of `model`; with `moments`, also the AdamW moments (the
// checkpoint must hold them).
LoadedCheckpoint load_logical_checkpoint(const std::string& dir, Model& model, const ProcessGroups& groups,
                                         LocalMoments* moments);

}  // namespace foldmoe
