#include "cli/launch.h"

#include <unistd.h>

#include <cstdio>
#include <memory>

#include "comm/mpi_communicator.h"
#include "comm/mpi_watchdog.h"
#include "comm/topology.h"
#include "core/check.h"
#include "core/fault_inject.h"
#include "core/launch_env.h"
#include "train/memory_check.h"

namespace foldmoe::cli {
namespace {
std::unique_ptr<MpiRuntime>& runtime() {
  static std::unique_ptr<MpiRuntime> rt;
  return rt;
}
}  // namespace

bool launched_by_mpi() {
  return launch_env().launched();
}

int launcher_rank() {
  return launch_env().rank;
}

ProcessGroups make_groups(const Config& cfg) {
  const LaunchEnv& env = launch_env();
  // A PMIx launch may not say the world size in the environment: then MPI says it.
  if (env.launched() && env.size == 0 && !runtime()) runtime() = std::make_unique<MpiRuntime>(nullptr, nullptr);
  const int world = !env.launched() ? 1 : env.size > 0 ? env.size : runtime()->world_size();
  // Every rule is checked before MPI starts or memory is allocated (docs/topology.md §5), the
  // memory estimate against this node's available memory included (docs/long-runs.md).
  validate_layout(LayoutSpec::from_config(cfg, world), &cfg);
  try {
    check_memory_fits(cfg, Topology(LayoutSpec::from_config(cfg, world)).sizes(), env.local_size);
  } catch (const UserError& e) {
    // Nodes differ in free memory and main prints rank 0's message only: the first rank of every
    // other node that fails speaks for its node.
    if (env.rank != 0 && env.local_rank == 0) {
      char host[256] = "?";
      ::gethostname(host, sizeof host - 1);
      std::fprintf(stderr, "foldmoe: error (rank %d on %s): %s\n", env.rank, host, e.what());
    }
    throw;
  }
  if (!env.launched()) {
    inject_fault("startup");
    return ProcessGroups::single_process();
  }
  if (!runtime()) runtime() = std::make_unique<MpiRuntime>(nullptr, nullptr);
  // srun with an MPI library that cannot talk to Slurm starts every task as its own world of 1.
  if (env.size > 0 && runtime()->world_size() != env.size)
    user_error(
        "{} started {} ranks but MPI sees a world of {}: the MPI library was not started by this launcher (an "
        "Open MPI without Slurm/PMIx support under srun?).\n  fix: launch with mpirun, or with srun --mpi=pmix "
        "(`srun --mpi=list` shows what the cluster offers); see scripts/slurm/README.md",
        env.launcher, env.size, runtime()->world_size());
  set_collective_timeout(cfg.parallel.timeout_s);
  const Topology topo(LayoutSpec::from_config(cfg, runtime()->world_size()));
  ProcessGroups groups = make_process_groups(topo, *runtime()->world());
  inject_fault("startup");
  return groups;
}

std::shared_ptr<Communicator> launch_world() {
  if (!launch_env().launched()) return nullptr;
  if (!runtime()) runtime() = std::make_unique<MpiRuntime>(nullptr, nullptr);
  return runtime()->world();
}

void shutdown_launch() {
  runtime().reset();
}

}  // namespace foldmoe::cli
