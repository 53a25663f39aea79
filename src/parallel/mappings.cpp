#include "parallel/mappings.h"

#include <algorithm>

namespace foldmoe {

const float* sp_gather(Communicator& tp, const float* x_loc, int64_t rows_loc, int64_t H, std::vector<float>& buf) {
  if (tp.size() == 1) return x_loc;
  buf.resize(size_t(rows_loc * H * tp.size()));
  tp.all_gather(x_loc, buf.data(), rows_loc * H);
  return buf.data();
}

void sp_reduce_scatter(Communicator& tp, const float* full, int64_t rows_loc, int64_t H, float* out_loc) {
  if (tp.size() == 1) {
    if (full != out_loc) std::copy(full, full + rows_loc * H, out_loc);
    return;
  }
  tp.reduce_scatter(full, out_loc, rows_loc * H);
}

float* sp_partial_buffer(Communicator& tp, float* out_loc, int64_t rows_loc, int64_t H, std::vector<float>& buf) {
  if (tp.size() == 1) return out_loc;
  buf.resize(size_t(rows_loc * H * tp.size()));
  return buf.data();
}

}  // namespace foldmoe
