// Process setup shared by the subcommands that run a model: one process, or the ranks of an
// `mpirun` launch with the layout of [parallel] validated before any communicator is made.
#pragma once

#include <memory>

#include "comm/communicator.h"
#include "comm/process_groups.h"
#include "config/config.h"

namespace foldmoe::cli {

// True when this process was started by a launcher: mpirun (OMPI_COMM_WORLD_*), PMIx (PMIX_RANK) or
// Slurm's srun (SLURM_PROCID in a job step); core/launch_env.h reads the variables.
bool launched_by_mpi();
// This process's world rank as the launcher tells it (0 outside MPI); usable before MPI starts.
int launcher_rank();

// Validates the layout of cfg for the world size, checks the memory estimate against this node's
// available memory (rule T3), and builds every process group (MPI starts here when launched by
// mpirun or srun, with the collective watchdog of [parallel] timeout_s). Without MPI, world size 1.
ProcessGroups make_groups(const Config& cfg);

// The world communicator of an mpirun / srun launch (MPI starts here if it has not), nullptr when this
// process was not launched: for commands that measure the ranks rather than train a layout.
std::shared_ptr<Communicator> launch_world();

// Finalises MPI if it was started (called once by main before exit).
void shutdown_launch();

}  // namespace foldmoe::cli
