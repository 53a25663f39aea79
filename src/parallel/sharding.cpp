#include "parallel/sharding.h"

namespace foldmoe {

IndexMap row_shard(int64_t local_rows, int64_t cols, int rank) {
  const int64_t base = int64_t(rank) * local_rows * cols;
  return [base](int64_t i) { return base + i; };
}

IndexMap col_shard(int64_t rows, int64_t local_cols, int rank, int size) {
  const int64_t global_cols = local_cols * size, off = int64_t(rank) * local_cols;
  return [=](int64_t i) { return (i / local_cols) * global_cols + off + i % local_cols; };
}

IndexMap paired_row_shard(int64_t local_half_rows, int64_t cols, int rank, int size) {
  const int64_t Fl = local_half_rows, F = local_half_rows * size, r = rank;
  return [=](int64_t i) {
    const int64_t row = i / cols, col = i % cols;
    const int64_t g = row < Fl ? r * Fl + row : F + r * Fl + (row - Fl);
    return g * cols + col;
  };
}

IndexMap vocab_shard(int64_t local_rows, int64_t cols, int rank, int64_t vocab) {
  const int64_t first = int64_t(rank) * local_rows;
  return [=](int64_t i) {
    const int64_t row = first + i / cols;
    return row < vocab ? row * cols + i % cols : int64_t(-1);
  };
}

}  // namespace foldmoe
