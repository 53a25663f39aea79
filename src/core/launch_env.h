// Which launcher started this process and where it sits in the job, read from the environment
// before MPI starts: Open MPI's mpirun (OMPI_COMM_WORLD_*), a PMIx launcher (PMIX_RANK) and Slurm's
// srun (SLURM_PROCID, SLURM_STEP_NUM_TASKS / SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE).
// Open MPI's variables win when several are set (mpirun inside an sbatch allocation sets both).
#pragma once

#include <functional>
#include <string>

namespace foldmoe {

struct LaunchEnv {
  std::string launcher;  // "" (not launched), "mpirun", "pmix" or "srun"
  int rank = 0;          // world rank
  int size = 1;          // world size (0 = unknown, for a PMIx launch without a size variable)
  int local_rank = 0;    // rank among the processes of this node
  int local_size = 1;    // processes of this job on this node
  bool launched() const { return !launcher.empty(); }
};

// `get` returns a variable's value or nullptr (std::getenv in production, a map in tests).
// Values that are not non-negative integers are ignored (the variable counts as unset).
LaunchEnv parse_launch_env(const std::function<const char*(const char*)>& get);

// The process environment's launch description (read once).
const LaunchEnv& launch_env();

// Slurm's task-count list ("2(x3),1": 2 tasks on each of nodes 0-2, 1 on node 3) at `node`;
// 0 when the text is malformed or the node is outside it.
int slurm_tasks_on_node(const std::string& tasks_per_node, int node);

}  // namespace foldmoe
