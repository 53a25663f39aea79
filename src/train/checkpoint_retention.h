// What a long run keeps on disk (docs/long-runs.md): `checkpoint.keep_last` newest checkpoints,
// plus (with `checkpoint.keep_every = K`) every checkpoint whose step is a multiple of K, and the
// removal at start of what killed saves left behind.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

namespace foldmoe::train {

// The steps to delete after the checkpoint of step `just_saved` is complete, among `steps` (the
// step-NNNNNNNN checkpoints present). Only steps before `just_saved` are candidates: the one just
// saved is kept, and so is every checkpoint a run resumed from until a newer one is complete.
// Checkpoints of later steps (left by an earlier run that got further) are not this run's to
// judge. keep_last = 0 keeps everything.
std::vector<int64_t> checkpoints_to_prune(const std::vector<int64_t>& steps, int64_t just_saved, int keep_last,
                                          int keep_every);

// Deletes the complete checkpoints of `root` that checkpoints_to_prune selects; returns their
// paths. Incomplete step-NNNNNNNN directories are left alone (never delete what is not understood).
std::vector<std::filesystem::path> prune_checkpoints(const std::filesystem::path& root, int64_t just_saved,
                                                     int keep_last, int keep_every);

// Whether `name` is what an interrupted save leaves: "step-NNNNNNNN.tmp-<pid>" (the save's
// temporary directory) or "step-NNNNNNNN.old-<pid>" (a replaced checkpoint not yet deleted).
bool is_stale_save_leftover(const std::string& name);

// Removes those leftovers from `root` (call at start, before the run saves); returns their paths.
std::vector<std::filesystem::path> remove_stale_save_leftovers(const std::filesystem::path& root);

}  // namespace foldmoe::train
