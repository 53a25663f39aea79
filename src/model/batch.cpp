#include "model/batch.h"

#include <cstddef>

namespace foldmoe {

int64_t MicroBatch::valid_count() const {
  int64_t n = 0;
  for (uint8_t m : mask_N) n += m != 0;
  return n;
}

MicroBatch make_micro_batch(const int32_t* tokens, const uint8_t* mask, const uint8_t* task, int64_t S,
                            int64_t first, int64_t B) {
  MicroBatch mb;
  mb.B = B;
  mb.S = S;
  const int64_t N = B * S;
  mb.ids_N.resize(std::size_t(N));
  mb.targets_N.resize(std::size_t(N));
  mb.mask_N.assign(std::size_t(N), 1);
  mb.positions_N.resize(std::size_t(N));
  mb.task_N.assign(std::size_t(N), 0);
  mb.global_seq_B.resize(std::size_t(B));
  for (int64_t b = 0; b < B; ++b) {
    const int64_t row = first + b;
    mb.global_seq_B[std::size_t(b)] = row;
    const int32_t* seq = tokens + row * (S + 1);
    for (int64_t s = 0; s < S; ++s) {
      const std::size_t n = std::size_t(s * B + b);
      mb.ids_N[n] = seq[s];
      mb.targets_N[n] = seq[s + 1];
      mb.positions_N[n] = int32_t(s);
      if (mask) mb.mask_N[n] = mask[row * S + s];
      if (task) mb.task_N[n] = task[row * S + s];
    }
  }
  return mb;
}

}  // namespace foldmoe
