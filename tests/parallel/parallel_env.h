// Shared state of the mpirun test executable: the world communicator made by main().
#pragma once

#include <memory>

#include "comm/mpi_communicator.h"

namespace foldmoe::partest {

std::shared_ptr<Communicator>& world_slot();
inline Communicator& world() { return *world_slot(); }

}  // namespace foldmoe::partest
