#include "ops/embedding.h"

#include <cstring>

namespace foldmoe::ops {

template <typename T>
void embedding_forward(const T* table, const int32_t* ids, T* out, int64_t n, int64_t H) {
  for (int64_t r = 0; r < n; ++r) std::memcpy(out + r * H, table + int64_t(ids[r]) * H, size_t(H) * sizeof(T));
}

// Sequential over rows, so repeated ids accumulate deterministically in row order.
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int64_t n, int64_t H) {
  for (int64_t r = 0; r < n; ++r) {
    T* dst = dtable + int64_t(ids[r]) * H;
    const T* src = dout + r * H;
    for (int64_t j = 0; j < H; ++j) dst[j] += src[j];
  }
}

template void embedding_forward<float>(const float*, const int32_t*, float*, int64_t, int64_t);
template void embedding_forward<double>(const double*, const int32_t*, double*, int64_t, int64_t);
template void embedding_backward<float>(const int32_t*, const float*, float*, int64_t, int64_t);
template void embedding_backward<double>(const int32_t*, const double*, double*, int64_t, int64_t);

}  // namespace foldmoe::ops
