#include "moe/alltoall_metadata.h"

#include <numeric>

#include "core/check.h"

namespace foldmoe::moe {

AlltoAllMetadata alltoall_metadata(const std::vector<std::vector<int64_t>>& counts, int ETP, int EP, int my_etp,
                                   int my_ep) {
  const int W = ETP * EP;
  FOLDMOE_CHECK(ETP >= 1 && EP >= 1 && int(counts.size()) == W, "{} count vectors for ETP {} × EP {}", counts.size(),
                ETP, EP);
  FOLDMOE_CHECK(my_etp >= 0 && my_etp < ETP && my_ep >= 0 && my_ep < EP, "coordinates ({}, {}) out of range", my_etp,
                my_ep);
  const int E = int(counts[0].size());
  FOLDMOE_CHECK(E % EP == 0, "{} experts not divisible by EP {}", E, EP);
  for (const auto& c : counts) FOLDMOE_CHECK(int(c.size()) == E, "count vectors of unequal length");
  const int nle = E / EP;
  // G[t'][j'][e] = counts of the member with coordinates (t', j'), i.e. member t' + ETP·j'.
  const auto G = [&](int t, int j, int e) { return counts[size_t(t + ETP * j)][size_t(e)]; };
  const std::vector<int64_t>& mine = counts[size_t(my_etp + ETP * my_ep)];

  AlltoAllMetadata m;
  m.input_splits.assign(size_t(EP), 0);
  for (int e = 0; e < E; ++e) m.input_splits[size_t(e / nle)] += mine[size_t(e)];
  m.num_out_tokens = std::accumulate(mine.begin(), mine.end(), int64_t(0));
  m.output_splits.assign(size_t(EP), 0);
  m.output_splits_tp.assign(size_t(ETP), 0);
  m.tokens_per_local_expert.assign(size_t(nle), 0);
  m.chunk_sizes.assign(size_t(W * nle), 0);
  m.sorted_chunk_sizes.assign(size_t(W * nle), 0);
  for (int t = 0; t < ETP; ++t)
    for (int j = 0; j < EP; ++j)
      for (int le = 0; le < nle; ++le) {
        const int64_t g = G(t, j, my_ep * nle + le);
        if (t == my_etp) m.output_splits[size_t(j)] += g;
        m.output_splits_tp[size_t(t)] += g;
        m.tokens_per_local_expert[size_t(le)] += g;
        m.chunk_sizes[size_t((t * EP + j) * nle + le)] = g;
      }
  // Chunk id (t'·EP + j')·nle + le; output position le·W + (t'·EP + j').
  m.sort_perm.assign(size_t(W * nle), 0);
  m.unsort_perm.assign(size_t(W * nle), 0);
  for (int le = 0; le < nle; ++le)
    for (int w = 0; w < W; ++w) {
      const int out = le * W + w, in = w * nle + le;
      m.sort_perm[size_t(out)] = in;
      m.unsort_perm[size_t(in)] = out;
      m.sorted_chunk_sizes[size_t(out)] = m.chunk_sizes[size_t(in)];
    }
  return m;
}

}  // namespace foldmoe::moe
