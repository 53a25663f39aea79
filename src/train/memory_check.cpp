#include "train/memory_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "train/memory_estimate.h"
#include "train/trainer.h"

namespace foldmoe {
namespace {

std::optional<std::string> read_text(const char* path) {
  std::ifstream f(path);
  if (!f) return std::nullopt;
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::optional<double> parse_bytes(const std::string& text) {
  const char* p = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(p, &end);
  if (end == p || !(v >= 0)) return std::nullopt;
  return v;
}

std::string gib(double bytes) {
  return fmt::format("{:.2f} GiB", bytes / double(1 << 30));
}

}  // namespace

std::optional<double> parse_mem_available(const std::string& meminfo) {
  const std::string key = "MemAvailable:";
  size_t at = meminfo.find(key);
  if (at == std::string::npos || (at > 0 && meminfo[at - 1] != '\n')) return std::nullopt;
  std::istringstream line(meminfo.substr(at + key.size(), meminfo.find('\n', at) - at - key.size()));
  double kb = -1;
  std::string unit;
  if (!(line >> kb >> unit) || kb < 0 || unit != "kB") return std::nullopt;
  return kb * 1024;
}

std::optional<double> available_memory_bytes() {
  std::optional<double> avail;
  if (const auto meminfo = read_text("/proc/meminfo")) avail = parse_mem_available(*meminfo);
  // A container's cgroup limit may be far below the machine's free memory.
  const auto max = read_text("/sys/fs/cgroup/memory.max");
  const auto cur = read_text("/sys/fs/cgroup/memory.current");
  if (max && cur && max->rfind("max", 0) != 0) {
    const auto m = parse_bytes(*max), c = parse_bytes(*cur);
    if (m && c) {
      const double headroom = std::max(0.0, *m - *c);
      avail = avail ? std::min(*avail, headroom) : headroom;
    }
  }
  return avail;
}

Problems memory_problems(double per_rank, int local_ranks, double available) {
  Problems p;
  const int ranks = std::max(local_ranks, 1);
  const double need = per_rank * ranks;
  if (need <= available) return p;
  p.add("T3",
        fmt::format("the memory estimate is {} per rank{} but this node has {} available (MemAvailable of "
                    "/proc/meminfo, or the container's limit); the run would fail allocating or be killed.",
                    gib(per_rank), ranks > 1 ? fmt::format(" x {} ranks on this node = {}", ranks, gib(need)) : "",
                    gib(available)),
        "make the model, micro_batch or seq_len smaller, spread the job over more nodes or parallel ranks "
        "(`foldmoe topology --config FILE --world N` prints the estimate per stage), use train.recompute = "
        "\"full\", or pass --train.skip_memory_check=true to start anyway.");
  return p;
}

double largest_rank_estimate(const Config& cfg, const ParallelSizes& sizes) {
  double most = 0;
  for (const StageMemory& m : estimate_stage_memory(cfg, sizes)) most = std::max(most, m.total_bytes());
  return most;
}

void check_memory_fits(const Config& cfg, const ParallelSizes& sizes, int local_ranks) {
  if (cfg.train.skip_memory_check) return;
  const std::optional<double> available = available_memory_bytes();
  if (!available) return;  // not Linux, or no /proc: nothing to compare with
  const Config resolved = cfg.model.vocab > 0 ? cfg : resolve_config(cfg);
  memory_problems(largest_rank_estimate(resolved, sizes), local_ranks, *available).raise();
}

}  // namespace foldmoe
