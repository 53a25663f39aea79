#include "train/checkpoint_locator.h"

#include <filesystem>
#include <optional>
#include <vector>

#include "core/check.h"
#include "train/checkpoint.h"

namespace foldmoe::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kExpected =
    "a checkpoint directory (<run_dir>/checkpoints/step-NNNNNNNN), a run directory that saved "
    "checkpoints, or its checkpoints/ directory";

bool looks_like_checkpoint(const fs::path& p) {
  return fs::exists(p / "manifest.json") || fs::exists(p / "COMPLETE") || checkpoint_step_of(p).has_value();
}

struct Candidates {
  std::optional<fs::path> latest_complete;
  std::vector<fs::path> incomplete;
};

Candidates scan_steps(const fs::path& dir) {
  Candidates c;
  long long best = -1;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) user_error("cannot list '{}' to find its checkpoints: {}", dir.string(), ec.message());
  for (const fs::directory_entry& e : it) {
    const std::optional<long long> step = checkpoint_step_of(e.path());
    if (!e.is_directory() || !step) continue;
    if (!checkpoint_is_complete(e.path().string())) {
      c.incomplete.push_back(e.path());
    } else if (*step > best) {
      best = *step;
      c.latest_complete = e.path();
    }
  }
  return c;
}

}  // namespace

// The step of a directory named step-<digits>, or nothing.
std::optional<long long> checkpoint_step_of(const fs::path& p) {
  const std::string name = p.filename().string();
  if (name.rfind("step-", 0) != 0 || name.size() == 5 || name.size() > 5 + 18) return std::nullopt;
  for (size_t i = 5; i < name.size(); ++i)
    if (name[i] < '0' || name[i] > '9') return std::nullopt;
  return std::stoll(name.substr(5));
}

std::optional<fs::path> latest_complete_checkpoint(const fs::path& root) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return std::nullopt;
  return scan_steps(root).latest_complete;
}

bool is_auto_load(const std::string& load) {
  return load == "auto" || load == "latest";
}

std::string locate_checkpoint(const std::string& arg, const std::string& what) {
  const fs::path p(arg);
  std::error_code ec;
  if (!fs::exists(p, ec)) user_error("{} '{}' does not exist; pass {}", what, arg, kExpected);
  if (!fs::is_directory(p, ec)) user_error("{} '{}' is a file, not a directory; pass {}", what, arg, kExpected);
  if (looks_like_checkpoint(p)) return arg;  // loading validates it (and says if it is incomplete)

  const fs::path steps_dir = fs::is_directory(p / "checkpoints", ec) ? p / "checkpoints" : p;
  const Candidates c = scan_steps(steps_dir);
  if (c.latest_complete) return c.latest_complete->string();
  if (!c.incomplete.empty())
    user_error(
        "{} '{}': no complete checkpoint in '{}' ({} has no COMPLETE marker: an interrupted save, left "
        "as it is); pass a complete checkpoint directory instead",
        what, arg, steps_dir.string(), c.incomplete.front().filename().string());
  if (steps_dir != p)
    user_error(
        "{} '{}' is a run directory whose checkpoints/ holds no step-NNNNNNNN checkpoint (the run saved "
        "none yet: see checkpoint.every and checkpoint.save_final); pass {}",
        what, arg, kExpected);
  user_error(
      "{} '{}' is a directory but holds no checkpoint (no manifest.json, no checkpoints/, no "
      "step-NNNNNNNN); pass {}. A run that set checkpoint.dir saved its checkpoints there.",
      what, arg, kExpected);
}

}  // namespace foldmoe::train
