// Bytes held by vectors (their capacity): activation-memory accounting of caches.
#pragma once

#include <cstddef>
#include <vector>

namespace foldmoe {

template <typename... Vs>
size_t vector_bytes(const Vs&... vs) {
  return (size_t{0} + ... + (vs.capacity() * sizeof(typename Vs::value_type)));
}

}  // namespace foldmoe
