#include "plan/param_count.h"

namespace foldmoe::plan {

int layers_of_stage(const Config& m, const PlanLayout& l, int stage) {
  return l.pipeline_layers.empty() ? m.model.layers / l.pp : l.pipeline_layers[size_t(stage)];
}

double moe_layer_fraction(const Config& m) {
  if (m.moe.num_experts == 0) return 0;
  int moe = 0;
  for (int i = 0; i < m.model.layers; ++i) moe += m.is_moe_layer(i);
  return double(moe) / m.model.layers;
}

RankParams rank_params(const Config& m, const PlanLayout& l, int stage) {
  const double h = m.model.hidden, A = m.model.heads, G = m.model.kv_heads, d = m.head_dim();
  const double layers = layers_of_stage(m, l, stage), moe = moe_layer_fraction(m);
  const double attention = (h * (A + 2 * G) * d + A * d * h) / l.tp + 2 * h;
  const double shared = moe * (3 * h * m.moe.shared_expert_ffn_hidden_size / l.tp + (m.moe.shared_expert_gate ? h : 0));
  const double router = moe * h * m.moe.num_experts;
  const double dense_mlp = (1 - moe) * 3 * h * m.model.ffn / l.tp;
  RankParams p;
  p.dense = layers * (attention + shared + router + dense_mlp);
  p.expert = layers * moe * double(m.moe.num_experts) / l.ep * 3 * h * m.moe_ffn() / l.etp;
  const double vocab_shard = double(m.model.vocab) * h / l.tp;
  if (stage == 0) p.dense += vocab_shard;
  if (stage == l.pp - 1) p.dense += vocab_shard + h;  // output layer and final norm
  return p;
}

}  // namespace foldmoe::plan
