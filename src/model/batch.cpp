#include "model/batch.h"

#include <cstddef>

#include "core/check.h"

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

MicroBatch cp_split(const MicroBatch& mb, int cp, int r) {
  if (cp == 1) return mb;
  const int64_t S = mb.S, B = mb.B, c = S / (2 * cp);
  FOLDMOE_CHECK(S % (2 * cp) == 0 && r >= 0 && r < cp, "cp_split: S = {} into 2·{} chunks, rank {}", S, cp, r);
  MicroBatch out;
  out.B = B;
  out.S = 2 * c;
  out.S_full = mb.full_length();
  out.global_seq_B = mb.global_seq_B;
  const int64_t N = out.S * B;
  const int64_t per_row = mb.replay_NLK.empty() ? 0 : int64_t(mb.replay_NLK.size()) / mb.N();
  out.ids_N.resize(size_t(N));
  out.targets_N.resize(size_t(N));
  out.mask_N.resize(size_t(N));
  out.positions_N.resize(size_t(N));
  out.task_N.resize(size_t(N));
  out.replay_NLK.resize(size_t(N * per_row));
  for (int64_t s = 0; s < out.S; ++s) {
    const int64_t src = s < c ? r * c + s : (2 * cp - 1 - r) * c + (s - c);
    for (int64_t b = 0; b < B; ++b) {
      const size_t n = size_t(s * B + b), m = size_t(src * B + b);
      out.ids_N[n] = mb.ids_N[m];
      out.targets_N[n] = mb.targets_N[m];
      out.mask_N[n] = mb.mask_N[m];
      out.positions_N[n] = mb.positions_N[m];
      out.task_N[n] = mb.task_N.empty() ? 0 : mb.task_N[m];
      for (int64_t k = 0; k < per_row; ++k)
        out.replay_NLK[n * size_t(per_row) + size_t(k)] = mb.replay_NLK[m * size_t(per_row) + size_t(k)];
    }
  }
  return out;
}

}  // namespace foldmoe
