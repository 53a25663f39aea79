// Sequence-parallel conjugate collectives over the `tp` group (docs/dense-parallel.md §1). Activations are
// row-major [rows, H] with rows n = s·B + b, so the SP piece of TP rank t (positions
// [t·S_loc, (t+1)·S_loc)) is the contiguous row block t. Each forward op's backward is the other.
// With one TP rank they are identities and copy nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace foldmoe {

// SP gather: [rows_loc, H] -> [rows_loc·TP, H]. Returns x_loc itself when TP = 1, else buf.
// Backward: sp_reduce_scatter.
const float* sp_gather(Communicator& tp, const float* x_loc, int64_t rows_loc, int64_t H, std::vector<float>& buf);

// SP reduce-scatter: sums the partial [rows_loc·TP, H] over tp and keeps this rank's rows.
// Backward: sp_gather. full and out_loc may be the same pointer only when TP = 1.
void sp_reduce_scatter(Communicator& tp, const float* full, int64_t rows_loc, int64_t H, float* out_loc);

// Where to compute the partial [rows_loc·TP, H] that sp_reduce_scatter then sums into out_loc:
// buf (resized) when TP > 1; with TP = 1 out_loc itself, so that the one-process path writes its
// result in place and the reduce-scatter copies nothing.
float* sp_partial_buffer(Communicator& tp, float* out_loc, int64_t rows_loc, int64_t H, std::vector<float>& buf);

}  // namespace foldmoe
