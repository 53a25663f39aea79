// Local-to-global element index maps of tensor-parallel shards (docs/dense-parallel.md §2, docs/moe.md §7.2).
// A sharded parameter is initialised, gathered and checkpointed through these maps, so every
// layout starts from and saves the same logical tensor.
#pragma once

#include <cstdint>
#include <functional>

namespace foldmoe {

using IndexMap = std::function<int64_t(int64_t)>;

// Rows [r·R, (r+1)·R) of a [R·size, C] matrix (column-parallel weight, vocab shard).
IndexMap row_shard(int64_t local_rows, int64_t cols, int rank);
// Columns [r·C, (r+1)·C) of a [R, C·size] matrix (row-parallel weight).
IndexMap col_shard(int64_t rows, int64_t local_cols, int rank, int size);
// SwiGLU FC1 [2F, H] = [gate; up]: local rows [r·F', (r+1)·F') of gate then the same rows of up.
IndexMap paired_row_shard(int64_t local_half_rows, int64_t cols, int rank, int size);
// Vocab shard with padding: local row i is global row rank·local_rows + i, or padding (-1) when
// that row is >= vocab. Padding elements are zero and absent from checkpoints.
IndexMap vocab_shard(int64_t local_rows, int64_t cols, int rank, int64_t vocab);

// The map to store in a ParamSpec: empty (identity) when the parameter is not split at all, so an
// unsharded model's parameters are plain (checkpoint code relies on that).
inline IndexMap when_sharded(int size, IndexMap map) { return size > 1 ? std::move(map) : IndexMap{}; }

}  // namespace foldmoe
