// Turns what a user passes as a checkpoint (`eval --checkpoint`, `generate --checkpoint`,
// `rl --init`, `checkpoint.load`) into one checkpoint directory. Accepted, in this order:
//   - a checkpoint directory itself (it has manifest.json or COMPLETE, or is named step-N);
//   - a checkpoints directory (children step-NNNNNNNN): its latest complete checkpoint;
//   - a run directory (a checkpoints/ child): the latest complete checkpoint in there.
// Anything else is a UserError saying what was found and what is expected. Incomplete checkpoints
// are skipped when picking the latest, never touched: no message here advises deleting anything.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace foldmoe::train {

// `what` names the argument in messages (e.g. "--checkpoint", "checkpoint.load"). The returned
// path is the checkpoint directory to load (still validated in full by load_checkpoint).
std::string locate_checkpoint(const std::string& arg, const std::string& what);

// The latest complete step-NNNNNNNN checkpoint directly under `root`, or nothing (also when `root`
// does not exist). Incomplete ones are skipped.
std::optional<std::filesystem::path> latest_complete_checkpoint(const std::filesystem::path& root);

// `checkpoint.load = auto` (alias `latest`): what a requeued job passes to continue its run.
bool is_auto_load(const std::string& load);

// The step of a checkpoint directory named step-<digits> (step-NNNNNNNN as saved), or nothing.
std::optional<long long> checkpoint_step_of(const std::filesystem::path& p);

}  // namespace foldmoe::train
