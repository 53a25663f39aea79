#include "train/metrics.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/check.h"

namespace foldmoe {

double expert_imbalance(const std::vector<std::vector<int64_t>>& tokens_per_expert) {
  double sum = 0;
  int layers = 0;
  for (const auto& counts : tokens_per_expert) {
    if (counts.empty()) continue;
    int64_t total = 0, mx = 0;
    for (int64_t n : counts) total += n, mx = std::max(mx, n);
    if (total == 0) continue;
    const double mean = double(total) / double(counts.size());
    sum += double(mx) / mean;
    ++layers;
  }
  return layers ? sum / layers : 0.0;
}

std::string format_step_line(const StepMetrics& m) {
  std::string s = fmt::format(
      "step {:5d} | lm {:.4f} | aux {:.4f} | z {:.4f} | gnorm {:.2f} | lr {:.2e} | {:.0f} tok/s | MFU {:.1f}%",
      m.step, m.lm_loss, m.aux_loss, m.z_loss, m.grad_norm, m.lr, m.tokens_per_s, 100.0 * m.mfu);
  if (!m.tokens_per_expert.empty()) s += fmt::format(" | imb {:.2f}", m.expert_imbalance);
  if (m.dropped_fraction > 0) s += fmt::format(" | drop {:.1f}%", 100.0 * m.dropped_fraction);
  if (!m.comm_bytes.empty()) {
    int64_t total = 0;
    for (const auto& [kind, b] : m.comm_bytes) total += b;
    s += fmt::format(" | comm {:.2f} MB {:.0f} ms", double(total) / 1e6, 1e3 * m.comm_seconds);
  }
  return s;
}

nlohmann::ordered_json step_metrics_json(const StepMetrics& m) {
  nlohmann::ordered_json j;
  j["step"] = m.step;
  j["lm_loss"] = m.lm_loss;
  j["aux_loss"] = m.aux_loss;
  j["z_loss"] = m.z_loss;
  j["grad_norm"] = m.grad_norm;
  j["lr"] = m.lr;
  j["tokens_per_s"] = m.tokens_per_s;
  j["mfu"] = m.mfu;
  j["expert_imbalance"] = m.expert_imbalance;
  j["dropped_fraction"] = m.dropped_fraction;
  j["step_time_s"] = m.step_time_s;
  j["tokens_per_expert"] = m.tokens_per_expert;
  if (!m.task_tokens_per_expert.empty()) j["task_tokens_per_expert"] = m.task_tokens_per_expert;
  if (!m.aux_loss_per_layer.empty()) j["aux_loss_per_layer"] = m.aux_loss_per_layer;
  if (!m.comm_bytes.empty()) {
    j["comm_bytes"] = m.comm_bytes;
    j["comm_seconds"] = m.comm_seconds;
  }
  for (const auto& [k, v] : m.extra) j[k] = v;
  return j;
}

MetricsWriter::MetricsWriter(const std::string& run_dir)
    : path_((std::filesystem::path(run_dir) / "metrics.jsonl").string()) {
  std::error_code ec;
  std::filesystem::create_directories(run_dir, ec);
  if (ec)
    user_error("cannot create run directory {}: {}\n  fix: choose a writable [train] run_dir", run_dir, ec.message());
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0)
    user_error("cannot open {} for appending: {}\n  fix: choose a writable [train] run_dir", path_,
               std::strerror(errno));
}

MetricsWriter::~MetricsWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void MetricsWriter::write(const StepMetrics& m) {
  write(step_metrics_json(m));
}

void MetricsWriter::write(const nlohmann::ordered_json& record) {
  const std::string line = record.dump() + "\n";
  const off_t before = ::lseek(fd_, 0, SEEK_END);
  size_t done = 0;
  while (done < line.size()) {
    const ssize_t w = ::write(fd_, line.data() + done, line.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      if (before >= 0 && ::ftruncate(fd_, before) != 0) {
        // Nothing more to do: the message below still names the file and the first cause.
      }
      user_error(
          "cannot write {}: {} (the row of step {} is lost; the file ends at the row before it)\n  fix: free "
          "space on that file system, then resume from the last checkpoint",
          path_, std::strerror(err), record.value("step", int64_t(0)));
    }
    done += size_t(w);
  }
}

namespace {
std::string format_duration(double s) {
  if (!(s >= 0) || !std::isfinite(s)) return "--";
  const int64_t t = int64_t(std::llround(s));
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

std::string format_progress(int64_t step, int64_t total, double elapsed_s, int width) {
  const double frac = total > 0 ? std::clamp(double(step) / double(total), 0.0, 1.0) : 1.0;
  const int filled = int(frac * width);
  std::string bar(size_t(width), ' ');
  for (int i = 0; i < filled; ++i) bar[size_t(i)] = '=';
  if (filled < width && step > 0) bar[size_t(filled)] = '>';
  const double eta = step > 0 ? elapsed_s / double(step) * double(std::max<int64_t>(total - step, 0)) : -1;
  const int digits = int(fmt::format("{}", total).size());
  return fmt::format("[{}] {:>{}}/{} {:5.1f}%  ETA {}", bar, step, digits, total, 100.0 * frac,
                     format_duration(eta));
}

ProgressBar::ProgressBar(int64_t total_steps, const std::string& mode, std::FILE* out)
    : total_(total_steps),
      active_(mode == "on" || (mode == "auto" && out && isatty(fileno(out)))),
      out_(out),
      start_(std::chrono::steady_clock::now()) {}

ProgressBar::~ProgressBar() { finish(); }

void ProgressBar::clear() {
  if (drawn_) std::fputs("\r\033[K", out_);
  drawn_ = false;
}

void ProgressBar::draw() {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fputs(("\r\033[K" + format_progress(step_, total_, elapsed)).c_str(), out_);
  std::fflush(out_);
  drawn_ = true;
}

void ProgressBar::update(int64_t step) {
  step_ = step;
  if (active_) draw();
}

void ProgressBar::log_line(const std::string& line) {
  if (!out_) return;
  clear();
  std::fputs((line + "\n").c_str(), out_);
  if (active_) draw();
  else std::fflush(out_);
}

void ProgressBar::finish() {
  if (active_ && drawn_) {
    std::fputs("\n", out_);
    std::fflush(out_);
  }
  drawn_ = false;
  active_ = false;
}

}  // namespace foldmoe
