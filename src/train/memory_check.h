// Rule T3: the memory estimate of `foldmoe topology` (train/memory_estimate.h) must fit in the
// memory this node has available, shared among the ranks of the job on this node, before any
// process group is made or tensor allocated. Otherwise a run far too large for the machine would
// start, allocate for minutes, and end in the kernel's OOM killer or std::bad_alloc.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "comm/process_groups.h"
#include "config/config.h"
#include "config/problems.h"

namespace foldmoe {

// "MemAvailable: 123456 kB" of /proc/meminfo's text, in bytes; nullopt when absent or malformed.
std::optional<double> parse_mem_available(const std::string& meminfo);

// Bytes this process may still use: MemAvailable, lowered to a cgroup (v2) limit's headroom when a
// container sets one; nullopt when neither can be read (then the check is skipped).
std::optional<double> available_memory_bytes();

// The T3 violation for a per-rank estimate of `per_rank` bytes with `local_ranks` ranks on this node
// and `available` bytes, or nothing when it fits.
Problems memory_problems(double per_rank, int local_ranks, double available);

// The largest per-rank estimate of cfg under sizes (the stage that needs the most).
double largest_rank_estimate(const Config& cfg, const ParallelSizes& sizes);

// Raises T3 unless cfg.train.skip_memory_check (cfg's vocabulary is resolved here if it is 0).
void check_memory_fits(const Config& cfg, const ParallelSizes& sizes, int local_ranks);

}  // namespace foldmoe
