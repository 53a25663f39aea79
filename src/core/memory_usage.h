// This process's resident memory, for the metrics (peak memory per rank).
#pragma once

#include <cstdint>

namespace foldmoe {

// The peak resident set size of this process since it started (getrusage ru_maxrss), in bytes.
int64_t peak_rss_bytes();

}  // namespace foldmoe
