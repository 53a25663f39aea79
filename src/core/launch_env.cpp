#include "core/launch_env.h"

#include <cstdlib>
#include <optional>
#include <utility>
#include <vector>

namespace foldmoe {
namespace {

std::optional<int> parse_count(const char* text) {
  if (text == nullptr || *text == '\0') return std::nullopt;
  long v = 0;
  for (const char* p = text; *p; ++p) {
    if (*p < '0' || *p > '9') return std::nullopt;
    v = v * 10 + (*p - '0');
    if (v > 1'000'000'000) return std::nullopt;
  }
  return int(v);
}

}  // namespace

int slurm_tasks_on_node(const std::string& text, int node) {
  // Entries "N" or "N(xR)" separated by commas: R consecutive nodes with N tasks each. The whole
  // list is read first, so that a malformed one is refused whichever node asks.
  std::vector<std::pair<int, int>> runs;  // (tasks, nodes)
  size_t i = 0;
  while (true) {
    size_t j = i;
    while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
    const std::optional<int> n = parse_count(text.substr(i, j - i).c_str());
    if (!n) return 0;
    int repeat = 1;
    if (j < text.size() && text[j] == '(') {
      if (text.compare(j, 2, "(x") != 0) return 0;
      const size_t close = text.find(')', j);
      if (close == std::string::npos) return 0;
      const std::optional<int> r = parse_count(text.substr(j + 2, close - j - 2).c_str());
      if (!r || *r < 1) return 0;
      repeat = *r;
      j = close + 1;
    }
    runs.emplace_back(*n, repeat);
    if (j == text.size()) break;
    if (text[j] != ',') return 0;
    i = j + 1;
  }
  int first = 0;
  for (const auto& [tasks, nodes] : runs) {
    if (node >= first && node < first + nodes) return tasks;
    first += nodes;
  }
  return 0;
}

LaunchEnv parse_launch_env(const std::function<const char*(const char*)>& get) {
  const auto num = [&](const char* name) { return parse_count(get(name)); };
  LaunchEnv e;
  if (const auto rank = num("OMPI_COMM_WORLD_RANK"); rank && num("OMPI_COMM_WORLD_SIZE")) {
    e.launcher = "mpirun";
    e.rank = *rank;
    e.size = *num("OMPI_COMM_WORLD_SIZE");
    e.local_rank = num("OMPI_COMM_WORLD_LOCAL_RANK").value_or(0);
    e.local_size = num("OMPI_COMM_WORLD_LOCAL_SIZE").value_or(e.size);
    return e;
  }
  if (const auto rank = num("PMIX_RANK")) {
    e.launcher = "pmix";
    e.rank = *rank;
    e.size = num("OMPI_COMM_WORLD_SIZE").value_or(0);
    e.local_rank = num("OMPI_COMM_WORLD_LOCAL_RANK").value_or(0);
    e.local_size = num("OMPI_COMM_WORLD_LOCAL_SIZE").value_or(e.size > 0 ? e.size : 1);
    return e;
  }
  // srun sets the step variables in every task; an sbatch script itself has SLURM_PROCID and
  // SLURM_NTASKS but no step id, and is one process, not a rank of the job.
  const bool srun_step = get("SLURM_STEP_ID") != nullptr || get("SLURM_STEPID") != nullptr;
  if (const auto rank = num("SLURM_PROCID"); rank && srun_step) {
    const std::optional<int> size = num("SLURM_STEP_NUM_TASKS") ? num("SLURM_STEP_NUM_TASKS") : num("SLURM_NTASKS");
    if (size) {
      e.launcher = "srun";
      e.rank = *rank;
      e.size = *size;
      e.local_rank = num("SLURM_LOCALID").value_or(0);
      int local = 0;
      if (const char* list = get("SLURM_STEP_TASKS_PER_NODE"); list && num("SLURM_NODEID"))
        local = slurm_tasks_on_node(list, *num("SLURM_NODEID"));
      if (local == 0) local = num("SLURM_NTASKS_PER_NODE").value_or(0);
      if (local == 0) local = e.size;  // unknown: assume every task shares this node (the safe side)
      e.local_size = local;
      return e;
    }
  }
  return e;
}

const LaunchEnv& launch_env() {
  static const LaunchEnv env = parse_launch_env([](const char* name) { return std::getenv(name); });
  return env;
}

}  // namespace foldmoe
