// Process setup shared by the subcommands that run a model: one process, or the ranks of an
// `mpirun` launch with the layout of [parallel] validated before any communicator is made.
#pragma once

#include "comm/process_groups.h"
#include "config/config.h"

namespace foldmoe::cli {

// True when this process was started by an MPI launcher (Open MPI / PMIx environment).
bool launched_by_mpi();
// This process's world rank as the launcher tells it (0 outside MPI); usable before MPI starts.
int launcher_rank();

// Validates the layout of cfg for the world size and builds every process group (MPI starts here
// when launched by mpirun). Without MPI, world size 1.
ProcessGroups make_groups(const Config& cfg);

// Finalises MPI if it was started (called once by main before exit).
void shutdown_launch();

}  // namespace foldmoe::cli
