// Checkpoints: everything needed to continue training bit-exactly, written so that a crash or a
// failure never leaves a half-written checkpoint under the real name (docs/design.md §3 rule 9).
//
// A checkpoint is a directory:
//   model.safetensors      every parameter by global name at its logical shape (F32), and the
//                          buffers (e.g. layers.{i}.moe.router.expert_bias) by name
//   optimizer.safetensors  AdamW moments per parameter: "adam_m/<name>", "adam_v/<name>"
//   manifest.json          format_version, step, data_position (= step: the synthetic corpus's
//                          batch is a pure function of the step), parameter and buffer lists with
//                          shapes, per-file byte size and CRC-32, the resolved config (TOML text)
//                          and a free-form "extra" object; "checksum": the CRC-32 of the
//                          manifest's own canonical JSON without that field (rule C3)
//   COMPLETE               written last; without it the directory is not a checkpoint
// Saving writes `<dir>.tmp-<pid>`, fsyncs every file and the directory, then swaps it into place
// (an atomic exchange with any previous checkpoint, which is deleted afterwards).
//
// Everything is keyed by logical parameter name, never by arena offset or layout, so a checkpoint
// loads into any model with the same parameter names and shapes (docs/dense-parallel.md §9.6). Arena-shaped
// optimizer vectors use the arena's offsets; padding between parameters is not saved.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/arena.h"

namespace foldmoe::train {

// Version 2 adds the manifest's own checksum (rule C3). Version 1 checkpoints (written before it)
// still load: their tensor files carry CRCs, but an edit of their manifest cannot be detected.
inline constexpr int kCheckpointFormatVersion = 2;
inline constexpr int kUnsummedCheckpointFormatVersion = 1;

// What is saved and what is filled on load. Pointers are borrowed; null ones are skipped.
struct TrainState {
  int64_t step = 0;  // optimizer steps completed (the next step to run); also the data position
  ParamArena* dense = nullptr;
  ParamArena* expert = nullptr;  // null or empty for a dense model
  // AdamW first and second moments, each arena.total() long at the arena's offsets. Null on load =
  // weights only (e.g. evaluation); null on save = the checkpoint has no state for that arena.
  std::vector<float>* adam_m_dense = nullptr;
  std::vector<float>* adam_v_dense = nullptr;
  std::vector<float>* adam_m_expert = nullptr;
  std::vector<float>* adam_v_expert = nullptr;
  // Non-parameter state by global name. On load every buffer present here must be in the
  // checkpoint with the same length, and the checkpoint may hold no others.
  std::map<std::string, std::vector<float>> buffers;
  std::string config_toml;  // the resolved configuration; replaced by the saved one on load
  nlohmann::json extra = nlohmann::json::object();  // trainer-defined; replaced on load
};

struct SaveOptions {
  // Test seam: called in the temporary directory after each file is written (name of the file).
  // Throwing from it simulates a failure in the middle of a save.
  std::function<void(const std::string& file)> after_file;
};

// Saves atomically to `dir` (parent directories are created). A non-finite value in any tensor is
// refused before anything is written (rule C2). An existing complete checkpoint at
// `dir` is replaced only once the new one is complete. A directory at `dir` that is not a
// checkpoint (and not empty) is never touched: UserError.
void save_checkpoint(const std::string& dir, const TrainState& state, const SaveOptions& options = {});

// Loads `dir` into `state`: parameters into the arenas, moments where the pointers are set,
// buffers, step, config and extra. Everything is validated before anything is written, so on
// UserError `state` is unchanged. Errors: directory missing; no COMPLETE marker (interrupted
// save); a manifest failing its own checksum (C3); a file truncated or failing its checksum; a
// safetensors layout error (C4); a non-finite value (C2, naming the tensor); a parameter or buffer missing, extra or of
// another shape than the current model's (naming it, both shapes and the fix).
void load_checkpoint(const std::string& dir, TrainState& state);

// The validated manifest of a complete checkpoint (e.g. to read its config before building the
// model); checks the marker and the format version, not the tensor files.
nlohmann::json read_checkpoint_manifest(const std::string& dir);

// Whether `dir` holds a checkpoint with its COMPLETE marker.
bool checkpoint_is_complete(const std::string& dir);

}  // namespace foldmoe::train
