// AlltoAll dispatcher metadata as a pure function (docs/moe.md §6.3, worked example docs/topology.md §7): from
// the per-expert counts of every member of this rank's `etp_ep` group, the splits of the
// all-to-all over `ep`, the all-gather over `etp`, the chunk sizes and the sort permutation.
// The dispatcher (dispatcher_alltoall.cpp) computes the same quantities inline after its count
// all-gather; this function is the single-process reference for them.
#pragma once

#include <cstdint>
#include <vector>

namespace foldmoe::moe {

struct AlltoAllMetadata {
  std::vector<int64_t> input_splits;             // [EP]: rows this rank sends to EP rank j'
  std::vector<int64_t> output_splits;            // [EP]: rows this rank receives from EP rank j'
  std::vector<int64_t> output_splits_tp;         // [ETP]: rows of ETP rank t' after the all-gather
  std::vector<int64_t> tokens_per_local_expert;  // [nle]
  std::vector<int64_t> chunk_sizes;              // [ETP·EP·nle] in (t', j', le) order
  std::vector<int64_t> sorted_chunk_sizes;       // the same chunks in (le, t', j') order
  std::vector<int> sort_perm;                    // output chunk i = input chunk sort_perm[i]
  std::vector<int> unsort_perm;                  // inverse, applied in combine
  int64_t num_out_tokens = 0;                    // rows after permutation 1 = Σ of my counts
};

// counts[q][e]: kept tokens of the `etp_ep` member q = etp + ETP·ep for expert e (E = EP·nle
// entries each; ETP·EP members). (my_etp, my_ep): this rank's expert-grid coordinates.
AlltoAllMetadata alltoall_metadata(const std::vector<std::vector<int64_t>>& counts, int ETP, int EP, int my_etp,
                                   int my_ep);

}  // namespace foldmoe::moe
