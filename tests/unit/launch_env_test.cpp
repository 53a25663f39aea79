// The launcher variables of mpirun, PMIx and Slurm's srun (core/launch_env.h), and the
// FOLDMOE_FAULT_INJECT test seam's syntax (core/fault_inject.h).
#include "core/launch_env.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

#include "core/check.h"
#include "core/fault_inject.h"

using namespace foldmoe;

namespace {

LaunchEnv parse(const std::map<std::string, std::string>& vars) {
  return parse_launch_env([&](const char* name) -> const char* {
    const auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

}  // namespace

TEST(LaunchEnv, NoLauncherIsOneProcess) {
  const LaunchEnv e = parse({{"HOME", "/root"}});
  EXPECT_FALSE(e.launched());
  EXPECT_EQ(e.rank, 0);
  EXPECT_EQ(e.size, 1);
  EXPECT_EQ(e.local_size, 1);
}

TEST(LaunchEnv, OpenMpiVariables) {
  const LaunchEnv e = parse({{"OMPI_COMM_WORLD_RANK", "5"},
                             {"OMPI_COMM_WORLD_SIZE", "8"},
                             {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                             {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}});
  EXPECT_EQ(e.launcher, "mpirun");
  EXPECT_EQ(e.rank, 5);
  EXPECT_EQ(e.size, 8);
  EXPECT_EQ(e.local_rank, 1);
  EXPECT_EQ(e.local_size, 4);
}

TEST(LaunchEnv, OpenMpiWinsOverSlurmInsideAnAllocation) {
  // mpirun started from an sbatch script: Slurm's variables describe the batch step.
  const LaunchEnv e = parse({{"OMPI_COMM_WORLD_RANK", "3"},
                             {"OMPI_COMM_WORLD_SIZE", "4"},
                             {"SLURM_PROCID", "0"},
                             {"SLURM_NTASKS", "16"},
                             {"SLURM_STEP_ID", "0"}});
  EXPECT_EQ(e.launcher, "mpirun");
  EXPECT_EQ(e.rank, 3);
  EXPECT_EQ(e.size, 4);
  EXPECT_EQ(e.local_size, 4);  // no local size given: every rank on this node
}

TEST(LaunchEnv, PmixRankWithoutSize) {
  const LaunchEnv e = parse({{"PMIX_RANK", "2"}});
  EXPECT_EQ(e.launcher, "pmix");
  EXPECT_EQ(e.rank, 2);
  EXPECT_EQ(e.size, 0);  // MPI says it
}

TEST(LaunchEnv, SrunStepVariables) {
  const LaunchEnv e = parse({{"SLURM_PROCID", "6"},
                             {"SLURM_NTASKS", "8"},
                             {"SLURM_STEP_NUM_TASKS", "8"},
                             {"SLURM_STEP_ID", "1"},
                             {"SLURM_LOCALID", "2"},
                             {"SLURM_NODEID", "1"},
                             {"SLURM_STEP_TASKS_PER_NODE", "4(x2)"}});
  EXPECT_EQ(e.launcher, "srun");
  EXPECT_EQ(e.rank, 6);
  EXPECT_EQ(e.size, 8);
  EXPECT_EQ(e.local_rank, 2);
  EXPECT_EQ(e.local_size, 4);
}

TEST(LaunchEnv, SrunLocalSizeFromTasksPerNodeOrNtasks) {
  LaunchEnv e =
      parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "6"}, {"SLURM_STEPID", "0"}, {"SLURM_NTASKS_PER_NODE", "3"}});
  EXPECT_EQ(e.launcher, "srun");
  EXPECT_EQ(e.size, 6);
  EXPECT_EQ(e.local_size, 3);
  // Nothing says how tasks are spread: count them all on this node (the memory check's safe side).
  e = parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "6"}, {"SLURM_STEP_ID", "0"}});
  EXPECT_EQ(e.local_size, 6);
}

TEST(LaunchEnv, BatchScriptItselfIsNotARank) {
  // sbatch's script has SLURM_PROCID and SLURM_NTASKS but runs as one process outside any step.
  const LaunchEnv e = parse({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "16"}, {"SLURM_JOB_ID", "42"}});
  EXPECT_FALSE(e.launched());
  EXPECT_EQ(e.size, 1);
}

TEST(LaunchEnv, MalformedNumbersAreIgnored) {
  EXPECT_FALSE(parse({{"OMPI_COMM_WORLD_RANK", "x"}, {"OMPI_COMM_WORLD_SIZE", "4"}}).launched());
  EXPECT_FALSE(parse({{"OMPI_COMM_WORLD_RANK", "-1"}, {"OMPI_COMM_WORLD_SIZE", "4"}}).launched());
  EXPECT_FALSE(parse({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "99999999999"}}).launched());
  EXPECT_FALSE(parse({{"PMIX_RANK", ""}}).launched());
}

TEST(LaunchEnv, SlurmTasksPerNodeList) {
  EXPECT_EQ(slurm_tasks_on_node("4", 0), 4);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 0), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 2), 2);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 3), 1);
  EXPECT_EQ(slurm_tasks_on_node("2(x3),1", 4), 0);
  EXPECT_EQ(slurm_tasks_on_node("8,4(x2),16", 0), 8);
  EXPECT_EQ(slurm_tasks_on_node("8,4(x2),16", 2), 4);
  EXPECT_EQ(slurm_tasks_on_node("8,4(x2),16", 3), 16);
  EXPECT_EQ(slurm_tasks_on_node("8,4(x2),16", 4), 0);
  for (const char* bad : {"", "x", "2(x", "2(y3)", "2(x0)", "2,,3", "2;3"})
    EXPECT_EQ(slurm_tasks_on_node(bad, 0), 0) << bad;
}

TEST(FaultInject, ParsesTheTestSeam) {
  FaultSpec s = parse_fault_spec("rank=2,phase=step,step=3");
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.phase, "step");
  ASSERT_TRUE(s.step.has_value());
  EXPECT_EQ(*s.step, 3);
  EXPECT_EQ(s.kind, "error");
  s = parse_fault_spec("phase=save,kind=hang,rank=0");
  EXPECT_EQ(s.rank, 0);
  EXPECT_EQ(s.phase, "save");
  EXPECT_FALSE(s.step.has_value());
  EXPECT_EQ(s.kind, "hang");
  s = parse_fault_spec("rank=0,phase=write,step=4");  // rank 0's (background) checkpoint write
  EXPECT_EQ(s.phase, "write");
  EXPECT_EQ(*s.step, 4);
}

TEST(FaultInject, MalformedSeamIsAUserErrorNamingIt) {
  for (const char* bad : {"", "rank=2", "phase=step", "rank=x,phase=step", "rank=1,phase=lunch",
                          "rank=1,phase=step,kind=explode", "rank=1,phase=step,colour=red", "rank=1;phase=step",
                          "rank=-1,phase=step", "rank=1,phase=step,step=99999999999999999"}) {
    try {
      parse_fault_spec(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("FOLDMOE_FAULT_INJECT"), std::string::npos) << e.what();
    }
  }
}
