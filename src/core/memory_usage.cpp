#include "core/memory_usage.h"

#include <sys/resource.h>

namespace foldmoe {

int64_t peak_rss_bytes() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  return int64_t(u.ru_maxrss) * 1024;  // Linux reports kilobytes
}

}  // namespace foldmoe
