// Token embedding lookup: out[n, :] = table[ids[n], :].
#pragma once

#include <cstdint>

namespace foldmoe::ops {

template <typename T>
void embedding_forward(const T* table, const int32_t* ids, T* out, int64_t n, int64_t H);

// dtable[ids[n], :] += dout[n, :].
template <typename T>
void embedding_backward(const int32_t* ids, const T* dout, T* dtable, int64_t n, int64_t H);

}  // namespace foldmoe::ops
