#include "train/run_directory.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "train/checkpoint_locator.h"

namespace foldmoe {

namespace fs = std::filesystem;

namespace {

// The deepest existing path at or above `p` ("." for a relative path with no existing part).
fs::path existing_ancestor(const fs::path& p) {
  fs::path a = p.lexically_normal();
  std::error_code ec;
  while (!a.empty() && !fs::exists(fs::symlink_status(a, ec))) a = a.parent_path();
  return a.empty() ? fs::path(".") : a;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KB", "MB", "GB", "TB", "PB"};
  int u = 0;
  while (b >= 1000 && u < 5) b /= 1000, ++u;
  return fmt::format("{:.1f} {}", b, units[u]);
}

bool is_checkpoint_name(const std::string& name) { return train::checkpoint_step_of(name).has_value(); }

}  // namespace

void check_output_directory(const fs::path& dir, const std::string& key) {
  const std::string fix = fmt::format("fix: set {} to a directory this user can write (or move the file away)", key);
  std::error_code ec;
  const fs::file_status st = fs::status(dir, ec);
  // ENOTDIR: a file stands where a directory of the path should be (reported below).
  if (ec && ec != std::errc::no_such_file_or_directory && ec != std::errc::not_a_directory)
    user_error("{} = {}: cannot be inspected ({})\n  {}", key, dir.string(), ec.message(), fix);
  fs::path target = dir;
  if (fs::exists(st)) {
    if (!fs::is_directory(st))
      user_error("{} = {} is a file, not a directory: the run writes its files into a directory\n  {}", key,
                 dir.string(), fix);
  } else {
    // It will be created: its deepest existing ancestor must be a directory we can write into.
    target = existing_ancestor(dir);
    if (!fs::is_directory(target, ec))
      user_error("{} = {} cannot be created: {} is a file, not a directory\n  {}", key, dir.string(), target.string(),
                 fix);
  }
  if (::access(target.c_str(), W_OK | X_OK) != 0)
    user_error("{} = {}: {} is not writable ({})\n  {}", key, dir.string(), target.string(), std::strerror(errno), fix);
  struct statvfs vfs {};
  if (::statvfs(target.c_str(), &vfs) == 0 && (vfs.f_flag & ST_RDONLY))
    user_error("{} = {}: {} is on a read-only file system\n  {}", key, dir.string(), target.string(), fix);
}

void check_free_space(const fs::path& dir, double bytes, const std::string& what) {
  if (bytes <= 0) return;
  std::error_code ec;
  const fs::space_info sp = fs::space(existing_ancestor(dir), ec);
  if (ec || sp.capacity == 0) return;  // unknowable (a pseudo or network file system that does not say)
  if (double(sp.available) < bytes)
    user_error(
        "{} {}: its file system has {} available, one checkpoint needs about {}\n  fix: free space there, "
        "choose another checkpoint.dir, or save no checkpoint (checkpoint.interval = 0 and "
        "checkpoint.save_final = false)",
        what, dir.string(), human_bytes(double(sp.available)), human_bytes(bytes));
}

bool holds_earlier_run(const fs::path& run_dir, const fs::path& checkpoint_root) {
  std::error_code ec;
  const fs::path metrics = run_dir / "metrics.jsonl";
  if (fs::is_regular_file(metrics, ec) && fs::file_size(metrics, ec) > 0 && !ec) return true;
  if (!fs::is_directory(checkpoint_root, ec)) return false;
  for (const fs::directory_entry& e : fs::directory_iterator(checkpoint_root, ec))
    if (is_checkpoint_name(e.path().filename().string())) return true;
  return false;
}

void write_file_atomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  const auto fail = [&](int err) {
    std::error_code ec;
    fs::remove(tmp, ec);
    user_error("cannot write {}: {}\n  fix: free space on that file system or choose a writable [train] run_dir",
               path.string(), std::strerror(err));
  };
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail(errno);
  size_t done = 0;
  while (done < text.size()) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      ::close(fd);
      fail(err);
    }
    done += size_t(w);
  }
  if (::fsync(fd) != 0 && errno != EINVAL) {
    const int err = errno;
    ::close(fd);
    fail(err);
  }
  if (::close(fd) != 0) fail(errno);
  if (::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
}

int64_t truncate_metrics(const fs::path& metrics, int64_t last_step) {
  std::ifstream in(metrics);
  if (!in) return 0;
  std::string kept, line;
  int64_t rows = 0;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline: the row was being written when the run stopped
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) break;
    if (j.value("step", int64_t(0)) > last_step) continue;
    kept += line + "\n";
    ++rows;
  }
  in.close();
  write_file_atomically(metrics, kept);
  return rows;
}

bool is_checkpoint_of(const fs::path& checkpoint, const fs::path& checkpoint_root) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(checkpoint, ec);
  if (ec) return false;
  if (c.filename().empty()) c = c.parent_path();  // a trailing '/'
  fs::path r = fs::weakly_canonical(checkpoint_root, ec);
  if (ec) return false;
  if (r.filename().empty()) r = r.parent_path();
  return c.parent_path() == r;
}

RunDirectory::RunDirectory(RunDirectoryPlan plan) : plan_(std::move(plan)) {
  check_output_directory(plan_.run_dir, "train.run_dir");
  if (plan_.writes_checkpoints) check_output_directory(plan_.checkpoint_root, "checkpoint.dir");
  if (plan_.writes_checkpoints) check_free_space(plan_.checkpoint_root, plan_.checkpoint_bytes, "checkpoint.dir");
  const bool resume = !plan_.resume_from.empty();
  continues_ = resume && is_checkpoint_of(plan_.resume_from, plan_.checkpoint_root);
  if (continues_ || plan_.overwrite || !holds_earlier_run(plan_.run_dir, plan_.checkpoint_root)) return;
  if (!resume && plan_.auto_fresh) {
    plan_.overwrite = true;  // nothing complete to continue from: start the run over
    return;
  }
  if (!resume)
    user_error(
        "run directory {} already holds a run (metrics.jsonl or checkpoints in {}); a fresh `foldmoe {}` "
        "would replace them\n  fix: continue it from its latest checkpoint with --checkpoint.load=auto (or "
        "name one: --checkpoint.load={}/step-NNNNNNNN), choose a new --train.run_dir, or pass --overwrite to "
        "replace its metrics and checkpoints",
        plan_.run_dir.string(), plan_.checkpoint_root.string(), plan_.command, plan_.checkpoint_root.string());
  // Resuming another run's checkpoint here would cut this run's metrics back to that step.
  user_error(
      "run directory {} already holds a run, and checkpoint.load = {} is not one of its checkpoints (in {}); "
      "resuming here would cut its metrics.jsonl to the loaded step\n  fix: resume in the checkpoint's own run "
      "directory, choose a new --train.run_dir, or pass --overwrite to replace this directory's metrics and "
      "checkpoints",
      plan_.run_dir.string(), plan_.resume_from.string(), plan_.checkpoint_root.string());
}

fs::path RunDirectory::checkpoint_path(int64_t step) const {
  return plan_.checkpoint_root / fmt::format("step-{:08d}", step);
}

void RunDirectory::prepare(const std::string& config_toml, int64_t resumed_step) const {
  const auto make = [](const fs::path& dir, const std::string& key) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec)
      user_error("{} = {} cannot be created: {}\n  fix: set {} to a directory this user can write", key, dir.string(),
                 ec.message(), key);
  };
  make(plan_.run_dir, "train.run_dir");
  if (plan_.writes_checkpoints) make(plan_.checkpoint_root, "checkpoint.dir");
  if (plan_.overwrite && !continues_) {
    // Replace the earlier run: its metrics and its step-NNNNNNNN checkpoints, nothing else.
    std::error_code ec;
    fs::remove(metrics_path(), ec);
    if (fs::is_directory(plan_.checkpoint_root, ec))
      for (const fs::directory_entry& e : fs::directory_iterator(plan_.checkpoint_root, ec))
        if (is_checkpoint_name(e.path().filename().string())) {
          fs::remove_all(e.path(), ec);
          if (ec)
            user_error("--overwrite: cannot remove {}: {}\n  fix: remove it by hand or choose a new --train.run_dir",
                       e.path().string(), ec.message());
        }
  }
  write_file_atomically(plan_.run_dir / "config.toml", config_toml);
  if (continues_) {
    truncate_metrics(metrics_path(), resumed_step);
  } else {
    std::error_code ec;
    fs::remove(metrics_path(), ec);  // absent, empty (holds_earlier_run) or replaced (--overwrite)
  }
}

}  // namespace foldmoe
