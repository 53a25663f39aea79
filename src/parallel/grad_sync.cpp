#include "parallel/grad_sync.h"

#include "ops/adamw.h"

namespace foldmoe {

void scale_grads(ParamArena& a, float s) { ops::scale_inplace(a.grads(), a.total(), s); }

void reduce_sequence_parallel_grads(ParamArena& dense, const ProcessGroups& g) {
  if (g.tp->size() == 1) return;
  for (int i = 0; i < dense.size(); ++i)
    if (dense.spec(i).sequence_parallel)
      g.tp->all_reduce(dense.grads() + dense.offset(i), shape_numel(dense.spec(i).shape));
}

void reduce_gradients(ParamArena& dense, ParamArena& expert, const ProcessGroups& g, bool per_token_loss) {
  const int dp_cp = g.dp_cp->size();
  if (!per_token_loss && dp_cp > 1) {
    scale_grads(dense, 1.0f / float(dp_cp));
    scale_grads(expert, 1.0f / float(dp_cp));  // 1/(DP·CP), not 1/EDP (spec 03 §8)
  }
  if (dp_cp > 1) g.dp_cp->all_reduce(dense.grads(), dense.total());
  if (g.edp->size() > 1 && expert.total() > 0) g.edp->all_reduce(expert.grads(), expert.total());
  reduce_sequence_parallel_grads(dense, g);
}

std::pair<double, double> grad_square_norms(const ParamArena& dense, const ParamArena& expert, const ProcessGroups& g) {
  double d = 0;
  for (int i = 0; i < dense.size(); ++i) {
    if (dense.spec(i).sequence_parallel && g.tp->rank() != 0) continue;
    d += ops::sum_squares(dense.grads() + dense.offset(i), shape_numel(dense.spec(i).shape));
  }
  double e = ops::sum_squares(expert.grads(), expert.total());
  g.tp_pp->all_reduce(&d, 1);
  g.etp_ep_pp->all_reduce(&e, 1);
  return {d, e};
}

}  // namespace foldmoe
