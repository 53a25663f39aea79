#include "train/checkpoint_retention.h"

#include <algorithm>
#include <string>

#include "core/check.h"
#include "train/checkpoint.h"
#include "train/checkpoint_locator.h"

namespace foldmoe::train {
namespace fs = std::filesystem;

std::vector<int64_t> checkpoints_to_prune(const std::vector<int64_t>& steps, int64_t just_saved, int keep_last,
                                          int keep_every) {
  if (keep_last <= 0) return {};
  std::vector<int64_t> older;
  for (int64_t s : steps)
    if (s < just_saved) older.push_back(s);
  std::sort(older.begin(), older.end(), std::greater<>());
  std::vector<int64_t> out;
  // The one just saved counts as the first of the keep_last newest.
  for (size_t i = size_t(keep_last - 1); i < older.size(); ++i)
    if (keep_every <= 0 || older[i] % keep_every != 0) out.push_back(older[i]);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> prune_checkpoints(const fs::path& root, int64_t just_saved, int keep_last, int keep_every) {
  if (keep_last <= 0) return {};
  std::vector<int64_t> steps;
  std::error_code ec;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec)) {
    const auto step = checkpoint_step_of(e.path());
    if (step && checkpoint_is_complete(e.path().string())) steps.push_back(*step);
  }
  std::vector<fs::path> removed;
  for (int64_t s : checkpoints_to_prune(steps, just_saved, keep_last, keep_every)) {
    const fs::path p = root / fmt::format("step-{:08d}", s);
    fs::remove_all(p, ec);
    if (ec)
      user_error(
          "checkpoint.keep_last = {}: cannot delete the old checkpoint {}: {}\n  fix: check the permissions of "
          "checkpoint.dir, or set keep_last = 0 to keep every checkpoint",
          keep_last, p.string(), ec.message());
    removed.push_back(p);
  }
  return removed;
}

bool is_stale_save_leftover(const std::string& name) {
  for (const char* tag : {".tmp-", ".old-"}) {
    const size_t at = name.find(tag);
    if (at == std::string::npos || !checkpoint_step_of(name.substr(0, at))) continue;
    const std::string pid = name.substr(at + 5);
    if (!pid.empty() && std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) return true;
  }
  return false;
}

std::vector<fs::path> remove_stale_save_leftovers(const fs::path& root) {
  std::vector<fs::path> removed;
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return removed;
  for (const fs::directory_entry& e : fs::directory_iterator(root, ec))
    if (e.is_directory(ec) && is_stale_save_leftover(e.path().filename().string())) removed.push_back(e.path());
  for (const fs::path& p : removed) {
    fs::remove_all(p, ec);
    if (ec)
      user_error("cannot remove {} (left by an interrupted checkpoint save): {}\n  fix: remove it by hand", p.string(),
                 ec.message());
  }
  return removed;
}

}  // namespace foldmoe::train
