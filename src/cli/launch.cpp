#include "cli/launch.h"

#include <cstdlib>
#include <memory>

#include "comm/mpi_communicator.h"
#include "comm/topology.h"
#include "core/check.h"

namespace foldmoe::cli {
namespace {
std::unique_ptr<MpiRuntime>& runtime() {
  static std::unique_ptr<MpiRuntime> rt;
  return rt;
}
int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}
}  // namespace

bool launched_by_mpi() { return std::getenv("OMPI_COMM_WORLD_SIZE") || std::getenv("PMIX_RANK"); }

int launcher_rank() { return env_int("OMPI_COMM_WORLD_RANK", env_int("PMIX_RANK", 0)); }

ProcessGroups make_groups(const Config& cfg) {
  const int world = launched_by_mpi() ? env_int("OMPI_COMM_WORLD_SIZE", 1) : 1;
  // Every rule is checked before MPI starts or memory is allocated (docs/topology.md §5).
  validate_layout(LayoutSpec::from_config(cfg, world), &cfg);
  if (!launched_by_mpi()) return ProcessGroups::single_process();
  if (!runtime()) runtime() = std::make_unique<MpiRuntime>(nullptr, nullptr);
  const Topology topo(LayoutSpec::from_config(cfg, runtime()->world_size()));
  return make_process_groups(topo, *runtime()->world());
}

void shutdown_launch() { runtime().reset(); }

}  // namespace foldmoe::cli
