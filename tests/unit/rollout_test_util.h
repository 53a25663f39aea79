// Shared helpers of the rollout tests: small dense / MoE model configs and the teacher-forced
// reference forward (Model::forward_logits on one sequence).
#pragma once

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "model/model.h"

namespace foldmoe::test {

// kind: "dense", "moe" (softmax top-2), "moe-sigmoid" (sigmoid, shared expert with gate, router
// bias, expert bias, scaling, dense first layer), "moe-group" (pre-softmax, group-limited routing),
// "hf-qwen3" (per-head QK-norm, q/k/v biases, tied embeddings, llama3 RoPE, head_dim != hidden /
// heads, dense first layer), "hf-olmoe" (QK-norm over the whole projection, yarn RoPE, pre-softmax).
inline Config rollout_config(const std::string& kind) {
  Config c;
  c.model.layers = 2;
  c.model.hidden = 32;
  c.model.heads = 4;
  c.model.kv_heads = 2;
  c.model.ffn = 48;
  c.model.vocab = 40;
  c.model.init_std = 0.3;
  c.train.seed = 7;
  c.moe.aux_loss_coeff = {0.0};
  c.moe.z_loss_coeff.reset();
  c.moe.num_experts = 0;
  if (kind == "dense") return c;
  c.moe.num_experts = 4;
  c.moe.topk = 2;
  c.moe.ffn_hidden_size = 24;
  if (kind == "moe-sigmoid") {
    c.model.layers = 3;
    c.moe.layer_freq = {0, 1, 1};
    c.moe.score_function = "sigmoid";
    c.moe.router_bias = true;
    c.moe.enable_expert_bias = true;
    c.moe.topk_scaling_factor = 1.5;
    c.moe.shared_expert_ffn_hidden_size = 16;
    c.moe.shared_expert_gate = true;
  } else if (kind == "moe-group") {
    c.moe.num_experts = 8;
    c.moe.pre_softmax = true;
    c.moe.num_groups = 4;
    c.moe.group_topk = 2;
    c.moe.shared_expert_ffn_hidden_size = 16;
  } else if (kind == "hf-qwen3") {  // Hugging Face options (docs/model.md "Architecture options")
    c.model.head_dim = 12;
    c.model.qk_norm = "head";
    c.model.attention_bias = true;
    c.model.tie_embeddings = true;
    c.model.rope_scaling = "llama3";
    c.model.rope_scaling_factor = 4.0;
    c.model.rope_original_max_position = 8;
    c.moe.layer_freq = {0, 1};
  } else if (kind == "hf-olmoe") {
    c.model.qk_norm = "full";
    c.model.rope_theta = 300.0;
    c.model.rope_scaling = "yarn";
    c.model.rope_scaling_factor = 3.0;
    c.model.rope_original_max_position = 8;
    c.model.rope_beta_fast = 4.0;
    c.moe.pre_softmax = true;
  }
  return c;
}

inline std::vector<int32_t> random_tokens(int64_t n, int64_t V, uint64_t seed) {
  const CounterRng rng(seed, "rollout-test-tokens");
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) t[size_t(i)] = int32_t(rng.bits(uint64_t(i))[0] % uint32_t(V));
  return t;
}

// Teacher-forced logits [S, V] of one sequence (B = 1), and optionally its routing record.
inline std::vector<float> reference_logits(Model& m, const std::vector<int32_t>& seq,
                                           std::vector<int32_t>* routing = nullptr) {
  std::vector<int32_t> tok = seq;
  tok.push_back(0);  // target of the last position (unused)
  const MicroBatch mb = make_micro_batch(tok.data(), nullptr, nullptr, int64_t(seq.size()), 0, 1);
  std::vector<float> logits;
  MicroBatchResult r;
  m.forward_logits(mb, logits, &r);
  if (routing) *routing = r.routing_NLK;
  return logits;
}

inline double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, double(std::abs(a[i])));
  return m;
}

}  // namespace foldmoe::test
