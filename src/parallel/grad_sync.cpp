#include "parallel/grad_sync.h"

#include <algorithm>

#include "ops/adamw.h"

namespace foldmoe {

void scale_grads(ParamArena& a, float s) {
  if (s == 1.0f) return;  // x·1 = x: spares a pass over every gradient (one replica's mean)
  ops::scale_inplace(a.grads(), a.total(), s);
}

// Over one TP rank each all-reduce is a no-op: the loop then only walks the parameter specs.
void reduce_sequence_parallel_grads(ParamArena& dense, const ProcessGroups& g) {
  for (int i = 0; i < dense.size(); ++i)
    if (dense.spec(i).sequence_parallel)
      g.tp->all_reduce(dense.grads() + dense.offset(i), shape_numel(dense.spec(i).shape));
}

namespace {
void bucketed_all_reduce(Communicator& c, float* data, int64_t n, int64_t bucket) {
  for (int64_t at = 0; at < n; at += bucket) c.all_reduce(data + at, std::min(bucket, n - at));
}
}  // namespace

void reduce_gradients(ParamArena& dense, ParamArena& expert, const ProcessGroups& g, bool per_token_loss,
                      int64_t bucket_size) {
  const int64_t bucket = std::max<int64_t>(bucket_size, 1);
  const int dp_cp = g.dp_cp->size();
  if (!per_token_loss) {
    scale_grads(dense, 1.0f / float(dp_cp));
    scale_grads(expert, 1.0f / float(dp_cp));  // 1/(DP·CP), not 1/EDP (docs/dense-parallel.md §8)
  }
  bucketed_all_reduce(*g.dp_cp, dense.grads(), dense.total(), bucket);  // no-ops over one replica
  bucketed_all_reduce(*g.edp, expert.grads(), expert.total(), bucket);
  reduce_sequence_parallel_grads(dense, g);
}

std::pair<double, double> grad_square_norms(const ParamArena& dense, const ParamArena& expert, const ProcessGroups& g) {
  double d = 0;
  for (int i = 0; i < dense.size(); ++i) {
    if (dense.spec(i).sequence_parallel && g.tp->rank() != 0) continue;
    if (dense.spec(i).tied_copy) continue;  // counted on the first stage
    d += ops::sum_squares(dense.grads() + dense.offset(i), shape_numel(dense.spec(i).shape));
  }
  double e = ops::sum_squares(expert.grads(), expert.total());
  g.tp_pp->all_reduce(&d, 1);
  g.etp_ep_pp->all_reduce(&e, 1);
  return {d, e};
}

}  // namespace foldmoe
