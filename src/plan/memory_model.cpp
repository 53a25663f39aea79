#include "plan/memory_model.h"

#include <algorithm>

#include "plan/param_count.h"
#include "train/memory_estimate.h"

namespace foldmoe::plan {
namespace {

// Micro-batches (times the stage's layers) the first stage holds between forward and backward:
// 1F1B keeps min(pp, M); interleaving adds (pp-1)/(pp·vpp) of that (Korthikanti et al. 2022, §4.2.3).
double in_flight(const PlanLayout& l, int micro_batches) {
  const double base = std::min(l.pp, micro_batches);
  return l.vpp > 1 ? base * (1.0 + double(l.pp - 1) / (double(l.pp) * l.vpp)) : base;
}

MemoryEstimate cuda_memory(const Config& m, const PlanLayout& l, const Cluster& c, int seq, int micro_batches) {
  MemoryEstimate best;
  const double moe = moe_layer_fraction(m);
  const double T_a = double(l.micro_batch) * seq / l.cp, T_sp = T_a / l.tp;
  const double h = m.model.hidden;
  for (int stage : {0, l.pp - 1}) {
    const RankParams p = rank_params(m, l, stage);
    const double dense_shards = l.distributed_optimizer ? double(l.dp) * l.cp : 1.0;
    const double expert_shards = l.distributed_optimizer ? double(l.edp) : 1.0;
    MemoryEstimate e;
    e.parts["weights"] = 2 * (p.dense + p.expert);
    e.parts["gradients"] = 4 * (p.dense + p.expert);
    e.parts["optimizer"] = 12 * (p.dense / dense_shards + p.expert / expert_shards);
    const double layers = layers_of_stage(m, l, stage);
    double act = layers * layer_activation_bytes_cuda(m, l, seq) * in_flight(l, micro_batches);
    if (stage == l.pp - 1) act += T_a * m.model.vocab / l.tp * 4 * 2;  // fp32 logits and their gradient
    e.parts["activations"] = act;
    // Transient tensors of the layer in hand (the experts' unreduced output, which no layer saves) and the
    // pipeline's send/receive buffers.
    const double routed = T_sp * m.moe.topk * l.etp;
    e.parts["buffers"] = (moe > 0 ? 2 * routed * h : 0) + 4 * 2 * T_sp * h;
    double tensors = 0;
    for (const auto& [_, v] : e.parts) tensors += v;
    e.parts["fragmentation"] = tensors * c.fragmentation;
    e.parts["reserved"] = c.reserved_bytes;
    e.total = tensors + e.parts["fragmentation"] + c.reserved_bytes;
    if (e.total > best.total) best = e;
  }
  return best;
}

MemoryEstimate cpu_memory(const Config& m, const PlanLayout& l, const Cluster& c, int seq, int micro_batches) {
  Config cfg = m;
  cfg.parallel.tp = l.tp, cfg.parallel.cp = l.cp, cfg.parallel.pp = l.pp, cfg.parallel.vpp = l.vpp;
  cfg.parallel.ep = l.ep, cfg.parallel.etp = l.etp, cfg.parallel.order = l.order;
  cfg.parallel.distributed_optimizer = l.distributed_optimizer;
  cfg.train.micro_batch = l.micro_batch, cfg.train.seq_len = seq, cfg.train.recompute = l.recompute;
  cfg.train.global_batch = 0, cfg.train.micro_batches = micro_batches;
  ParallelSizes s;
  s.world = l.tp * l.cp * l.pp * l.dp, s.tp = l.tp, s.cp = l.cp, s.dp = l.dp, s.pp = l.pp;
  s.etp = l.etp, s.ep = l.ep, s.edp = l.edp;
  MemoryEstimate best;
  for (const StageMemory& sm : estimate_stage_memory(cfg, s)) {
    MemoryEstimate e;
    e.parts["weights"] = sm.weight_bytes;
    e.parts["gradients"] = sm.grad_bytes;
    e.parts["optimizer"] = sm.optimizer_bytes;
    e.parts["activations"] = sm.activation_bytes;
    const double tensors = sm.total_bytes();
    e.parts["fragmentation"] = tensors * c.fragmentation;
    e.parts["reserved"] = c.reserved_bytes;
    e.total = tensors * (1 + c.fragmentation) + c.reserved_bytes;
    if (e.total > best.total) best = e;
  }
  return best;
}

}  // namespace

double layer_activation_bytes_cuda(const Config& m, const PlanLayout& l, int seq) {
  const double moe = moe_layer_fraction(m);
  const double T_a = double(l.micro_batch) * seq / l.cp, T_sp = T_a / l.tp;
  const double h = m.model.hidden, A = m.model.heads, G = m.model.kv_heads, d = m.head_dim();
  const double E = m.moe.num_experts, k = m.moe.topk, F = m.moe_ffn(), Fsh = m.moe.shared_expert_ffn_hidden_size;
  const double routed = T_sp * k * l.etp;  // rows this rank's experts process
  // Elements saved per layer (bf16), by part.
  // The norm's input (which is also the residual) and its output, Q/K/V, the attention output (also the
  // output projection's input).
  const double attention = 2 * T_sp * h + T_a * (A + 2 * G) * d / l.tp + T_a * A * d / l.tp;
  const double experts = 2 * T_sp * h + 2 * T_sp * E + routed * h + routed * 3 * F / l.etp + T_sp * k * h;
  const double shared = Fsh > 0 ? T_sp * h + T_a * 3 * Fsh / l.tp : 0;
  const double dense_mlp = 2 * T_sp * h + T_a * 3 * m.model.ffn / l.tp;
  const double input = T_sp * h;
  double elems;
  if (l.recompute == "full") {
    elems = input;
  } else if (l.recompute == "moe") {
    elems = attention + moe * input + (1 - moe) * dense_mlp;
  } else {
    elems = attention + moe * (experts + shared) + (1 - moe) * dense_mlp;
  }
  return 2 * elems;
}

MemoryEstimate estimate_memory(const Config& m, const PlanLayout& l, const Cluster& c, int seq, int micro_batches) {
  return c.backend == "cpu" ? cpu_memory(m, l, c, seq, micro_batches) : cuda_memory(m, l, c, seq, micro_batches);
}

}  // namespace foldmoe::plan
