// One micro-batch as the model consumes it: sequence-major rows n = s·B + b (docs/moe.md §0).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace foldmoe {

struct MicroBatch {
  int64_t B = 0, S = 0;
  int64_t S_full = 0;                // whole sequence length before a CP split (0 = S)
  std::vector<int32_t> ids_N;        // input token of row n
  std::vector<int32_t> targets_N;    // next token
  std::vector<uint8_t> mask_N;       // 1 = counted in the loss
  std::vector<int32_t> positions_N;  // global position (s)
  std::vector<int64_t> global_seq_B; // index of each sequence in the global batch
  std::vector<uint8_t> task_N;       // task tag of each row (metrics only)
  // Router replay (docs/rl.md §12): expert ids [N, MoE layers, k] (row n = s·B + b) used instead of
  // each MoE layer's own top-k; a row whose first id of a layer is negative is routed live there.
  // Empty = live routing everywhere.
  std::vector<int32_t> replay_NLK;
  int64_t N() const { return B * S; }
  int64_t valid_count() const;
  int64_t full_length() const { return S_full > 0 ? S_full : S; }
};

// Context-parallel split (docs/dense-parallel.md §4.1, §4.2): each sequence is cut into 2·cp chunks of
// S/(2·cp) and rank r keeps chunks r and 2·cp−1−r, concatenated, with every per-row array
// (ids, targets, mask, positions = global positions, tags, replay ids) split the same way.
// cp = 1 returns a copy.
MicroBatch cp_split(const MicroBatch& mb, int cp, int r);

// Cuts sequences [first, first + B) of a row-major [rows, S+1] token array (and [rows, S] mask and
// task arrays; either may be empty) into a sequence-major micro-batch.
MicroBatch make_micro_batch(const int32_t* tokens, const uint8_t* mask, const uint8_t* task, int64_t S,
                            int64_t first, int64_t B);

}  // namespace foldmoe
