// Open MPI backend of Communicator (docs/design.md §3 rule 8). No MPI type appears in this header.
//
// Reductions are deterministic (docs/moe.md §6.5): all_reduce, reduce_scatter and reduce_scatter_v
// gather every member's contribution and sum it locally in member order (fp32 for float data),
// so results are bit-identical across runs and independent of the MPI library's algorithms.
// Counts are 64-bit in the interface; a single MPI call whose count or displacement exceeds
// INT_MAX elements stops with an internal error (all_reduce is chunked and has no such limit).
#pragma once

#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/process_groups.h"
#include "comm/topology.h"

namespace foldmoe {

// RAII MPI initialisation (MPI_Init_thread, MPI_THREAD_FUNNELED: only the main thread calls MPI).
// Finalises on destruction if it initialised. At most one may be alive; a second MpiRuntime while
// MPI is already initialised is allowed and then owns nothing.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;

  int world_rank() const;
  int world_size() const;
  // The world communicator (a duplicate of MPI_COMM_WORLD, with its own traffic statistics).
  std::shared_ptr<Communicator> world();

 private:
  bool owns_ = false;
  std::shared_ptr<Communicator> world_;
};

// True between MPI_Init and MPI_Finalize.
bool mpi_running();
// MPI_COMM_WORLD's size while MPI runs, else 1.
int mpi_world_size();
// Ends every rank of the job (MPI_Abort) with exit status `code`: what a rank does after an error
// that the others may not share, so that none is left waiting in a collective.
[[noreturn]] void abort_mpi_job(int code);

// True if `c` is an MPI communicator made by this backend.
bool is_mpi_communicator(const Communicator& c);

// Splits `parent` (an MPI communicator; collective over all its members) into sub-communicators
// given as explicit lists of parent ranks: this rank joins the group that contains it, with rank
// in group = its position in that list (member order of docs/topology.md §2.3 P2). Groups must be disjoint; a
// rank in no group gets nullptr. `name` labels the result (e.g. "tp").
std::shared_ptr<Communicator> mpi_split(Communicator& parent, const RankGroups& groups, const std::string& name);

// Every group of docs/topology.md §3 that components use, for this rank, built over `world_mpi` (an MPI
// communicator of exactly topo.sizes().world ranks, rank = global rank). Collective over the
// world. Also fills coords and sizes.
ProcessGroups make_process_groups(const Topology& topo, Communicator& world_mpi);

}  // namespace foldmoe
