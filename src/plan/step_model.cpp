#include "plan/step_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "plan/collectives.h"
#include "plan/links.h"
#include "plan/memory_model.h"
#include "plan/param_count.h"
#include "train/flops.h"

namespace foldmoe::plan {
namespace {

// What one rank computes for a GEMM of shape m×n×k.
struct Device {
  const Cluster& c;
  double gemm_peak;  // FLOP/s for the linear layers at the run's precision
  double peak;       // FLOP/s for attention (bf16/fp32)
  double memory_bw;

  double dim_factor(double x) const { return x / (x + c.gemm_half_dim); }
  // Forward and both backward GEMMs (dgrad, wgrad: the same three dimensions).
  double gemm3(double m, double n, double k) const {
    if (m <= 0 || n <= 0 || k <= 0) return 0;
    const double eff = c.gemm_efficiency * dim_factor(m) * dim_factor(n) * dim_factor(k);
    return 3 * 2 * m * n * k / (gemm_peak * eff);
  }
  double memory(double bytes) const { return bytes / memory_bw; }
};

struct Spans {
  GroupSpan tp, cp, dp_cp, pp, etp, ep, edp;
};

}  // namespace

double flops_per_token(const Config& model, int seq) {
  Config c = model;
  c.train.seq_len = seq;
  return model_flops_per_token(c);
}

Prediction predict(const Config& m, const Workload& w, PlanLayout l, const Cluster& c) {
  l.dp = w.gpus / (l.tp * l.cp * l.pp);
  l.edp = w.gpus / (l.etp * l.ep * l.pp);
  Prediction out;
  out.layout = l;
  const bool cpu = c.backend == "cpu";
  const double act_bytes = cpu ? 4 : 2;
  // fp8 runs the linear layers' GEMMs at the fp8 peak times its own efficiency (relative to gemm_efficiency,
  // which the shape factors multiply), and casts their inputs (memory-bound passes).
  const bool fp8 = !cpu && w.precision == "fp8" && c.peak_flops_fp8 > 0;
  const double gemm_peak = fp8 ? c.peak_flops_fp8 * c.gemm_fp8_efficiency / c.gemm_efficiency : c.peak_flops;
  // Each device computes at full speed here; ranks that share CPU cores are accounted for at the end.
  const Device dev{c, gemm_peak, c.peak_flops, c.memory_bw};

  Spans g;
  const int W = w.gpus, N = c.devices_per_node;
  g.tp = group_span(l, W, N, false, {kTP});
  g.cp = group_span(l, W, N, false, {kCP});
  g.dp_cp = group_span(l, W, N, false, {kDP, kCP});
  g.pp = group_span(l, W, N, false, {kPP});
  g.etp = group_span(l, W, N, true, {kTP});
  g.ep = group_span(l, W, N, true, {kEP});
  g.edp = group_span(l, W, N, true, {kDP});
  const auto link = [](const GroupSpan& s) { return s.size <= 1 ? "-" : s.crosses_nodes() ? "network" : "intra-node"; };
  out.links = fmt::format("tp:{} cp:{} dp:{} pp:{} etp:{} ep:{} edp:{}", link(g.tp), link(g.cp), link(g.dp_cp),
                          link(g.pp), link(g.etp), link(g.ep), link(g.edp));

  const double h = m.model.hidden, A = m.model.heads, G = m.model.kv_heads, d = m.head_dim();
  const double E = std::max(1, m.moe.num_experts), k = m.moe.topk, F = m.moe_ffn();
  const double Fsh = m.moe.shared_expert_ffn_hidden_size, V = m.model.vocab, s = w.seq;
  const double moe = moe_layer_fraction(m);
  const double T_a = double(l.micro_batch) * s / l.cp, T_sp = T_a / l.tp;
  const double routed = T_sp * k * l.etp, local_experts = E / l.ep;

  // ---- compute of one layer, one micro-batch, forward + backward (seconds)
  const double qkv = dev.gemm3(T_a, (A + 2 * G) * d / l.tp, h) + dev.gemm3(T_a, h, A * d / l.tp);
  const double attn_flops = 3 * 2 * T_a * s * d * A / l.tp;  // causal: half of 4·T·s·d per head, fwd+bwd = 3× fwd
  // Context parallelism splits each sequence into 2·cp load-balanced chunks: the kernel runs on chunks of
  // s/(2·cp) queries (the shape factor), and every ring step rescales the partial output with the new
  // softmax statistics (read and write of the output, forward; twice in the backward).
  const double chunk = s / (2.0 * l.cp);
  const double attn_core = attn_flops / (dev.peak * c.attention_efficiency * (l.cp > 1 ? dev.dim_factor(chunk) : 1.0)) +
                           (l.cp > 1 ? dev.memory(3 * 4 * (l.cp - 1) * T_a * A * d / l.tp * act_bytes) : 0.0);
  const double rows_per_expert = routed / local_experts;
  const double experts =
      local_experts * (dev.gemm3(rows_per_expert, 2 * F / l.etp, h) + dev.gemm3(rows_per_expert, h, F / l.etp));
  const double router = dev.gemm3(T_sp, E, h);
  const double shared = Fsh > 0 ? dev.gemm3(T_a, 2 * Fsh / l.tp, h) + dev.gemm3(T_a, h, Fsh / l.tp) : 0;
  const double dense_mlp = dev.gemm3(T_a, 2 * m.model.ffn / l.tp, h) + dev.gemm3(T_a, h, m.model.ffn / l.tp);
  const double elementwise = dev.memory((c.elementwise_passes + (fp8 ? c.fp8_cast_passes : 0)) * T_sp * h * act_bytes);
  const double permute = dev.memory(c.permute_passes * T_sp * k * h * act_bytes);
  const double moe_compute = experts + router + shared + permute;
  const double layer_compute = qkv + attn_core + elementwise + moe * moe_compute + (1 - moe) * dense_mlp;

  // ---- communication of one layer, one micro-batch, forward + backward
  const double sp_bytes = T_a * h * act_bytes;          // an all-gathered activation of the attention grid
  const int tp_ops = 2 + (Fsh > 0 || moe < 1 ? 2 : 0);  // attention AG+RS, shared expert / dense MLP AG+RS
  const double tp_comm = 2 * tp_ops * allgather_time(c, g.tp, sp_bytes) * (1 - c.overlap_tp);
  // The expert-TP all-gather of the routed tokens before the experts and reduce-scatter after them: part
  // of the token dispatcher, so it overlaps like the all-to-all (TP overlap covers the linear layers only).
  const double etp_comm = moe * 2 * 2 * allgather_time(c, g.etp, routed * h * act_bytes) * (1 - c.overlap_ep);
  const double ep_comm = moe * 2 * 2 * alltoall_time(c, g.ep, T_sp * k * h * act_bytes) * (1 - c.overlap_ep);
  const double kv_chunk = T_a * 2 * G * d / l.tp * act_bytes;
  const double cp_ring = g.cp.size > 1 ? 3 * (g.cp.size - 1) * p2p_time(c, g.cp.crosses_nodes(), kv_chunk) : 0;
  // The ring hides its transfers behind the attention of the chunk in hand, except the first of the
  // forward and of the backward (nothing to compute yet).
  const double cp_first = g.cp.size > 1 ? 3 * p2p_time(c, g.cp.crosses_nodes(), kv_chunk) : 0;
  const double cp_comm = std::max(cp_first, cp_ring - c.overlap_cp * attn_core);

  // Recomputation repeats the forward of what it drops: a third of its compute, half of its communication.
  double recompute = 0;
  if (l.recompute == "full") recompute = layer_compute / 3 + (tp_comm + etp_comm + ep_comm) / 2;
  if (l.recompute == "moe") recompute = moe * (moe_compute / 3 + (etp_comm + ep_comm) / 2);

  const double head = dev.gemm3(T_a, V / l.tp, h) + dev.memory(T_a * V / l.tp * 4 * 4);
  const double pp_p2p = l.pp > 1 ? 2 * l.vpp * p2p_time(c, g.pp.crosses_nodes(), T_sp * h * act_bytes) : 0;
  const double t_layer = layer_compute + recompute + tp_comm + etp_comm + ep_comm + cp_comm;
  // The stage with the output layer is the slowest of an even split. Without interleaving, move layers
  // off it onto the others while that shortens the slowest stage (Megatron's uneven first/last stage).
  const int L = m.model.layers;
  if (l.pp > 1 && l.vpp == 1) {
    int best_last = L / l.pp;
    double best = 1e300;
    for (int last = L / l.pp; last >= 1; --last) {
      const int rest = L - last, others = l.pp - 1;
      const double slowest = std::max(double((rest + others - 1) / others) * t_layer, last * t_layer + head);
      if (slowest < best - 1e-12) best = slowest, best_last = last;
    }
    if (best_last != L / l.pp) {
      const int rest = L - best_last, others = l.pp - 1;
      l.pipeline_layers.assign(size_t(l.pp), rest / others);
      for (int i = 0; i < rest % others; ++i) ++l.pipeline_layers[size_t(i)];
      l.pipeline_layers.back() = best_last;
    }
  }
  int slowest = 0;
  const auto stage_time = [&](int st) { return layers_of_stage(m, l, st) * t_layer + (st == l.pp - 1 ? head : 0.0); };
  for (int st = 1; st < l.pp; ++st)
    if (stage_time(st) > stage_time(slowest)) slowest = st;
  out.layout = l;
  const double layers = layers_of_stage(m, l, slowest);
  const double head_on_slowest = slowest == l.pp - 1 ? head : 0.0;
  const double t_mb_slowest = stage_time(slowest) + pp_p2p;
  const double t_mb_total = L * t_layer + head + l.pp * pp_p2p;  // every stage's time, summed
  // 1F1B: the first micro-batch's forward and the last one's backward pass through every stage once,
  // the others follow at the slowest stage's pace: step = (M−1)·t_slowest + Σ t_stage
  // = M·t_slowest + (pp−1)·(mean of the other stages) — exact when the slowest stage is the last
  // (the one with the output layer), and the usual (pp−1)·t when the stages are equal. The bubble is
  // the other stages' time, not the mean over all stages (that counted the output layer's stage twice).
  const double t_mb_others = l.pp > 1 ? (t_mb_total - t_mb_slowest) / (l.pp - 1) : 0.0;

  const int M = w.global_batch / (l.micro_batch * l.dp);
  const double bubble = double(l.pp - 1) / l.vpp * t_mb_others;

  // ---- data-parallel gradient reduction and parameter gather; the optimizer step
  const RankParams p = rank_params(m, l, l.pp - 1);
  const double grad_bytes = 4, param_bytes = cpu ? 4 : 2;
  double dp_grad, dp_param = 0;
  if (l.distributed_optimizer) {
    dp_grad =
        reduce_scatter_time(c, g.dp_cp, p.dense * grad_bytes) + reduce_scatter_time(c, g.edp, p.expert * grad_bytes);
    dp_param = allgather_time(c, g.dp_cp, p.dense * param_bytes) + allgather_time(c, g.edp, p.expert * param_bytes);
  } else {
    dp_grad = allreduce_time(c, g.dp_cp, p.dense * grad_bytes) + allreduce_time(c, g.edp, p.expert * grad_bytes);
  }
  // Overlap windows (Megatron's --overlap-grad-reduce / --overlap-param-gather): gradients reduce while
  // the last micro-batch runs its backward and while the first stage idles in the pipeline's cool-down;
  // parameters of later chunks gather behind the warm-up forwards (the first chunk's behind its own).
  const double t_bwd = t_mb_slowest * 2 / 3, t_fwd = t_mb_slowest / 3;
  const double grad_window = t_bwd + bubble;
  const double param_window = l.vpp > 1 ? t_fwd / l.vpp * std::min(l.pp, M) : t_fwd;
  const double dp_exposed =
      std::max(0.0, dp_grad - c.overlap_dp * grad_window) + std::max(0.0, dp_param - c.overlap_dp * param_window);
  const double opt_params =
      l.distributed_optimizer ? p.dense / (double(l.dp) * l.cp) + p.expert / l.edp : p.dense + p.expert;
  const double optimizer = dev.memory(opt_params * (cpu ? 28 : 34));  // read/write master, moments, grad, weight

  out.step_time_s = M * t_mb_slowest + bubble + dp_exposed + optimizer + c.step_overhead_s;
  // CPU ranks that share cores: the step takes at least the node's total busy time over its cores.
  // A rank computes its own stage's micro-batches and waits (yielding its core) otherwise, so the busy
  // time is each stage's work, not the slowest stage's times the ranks: pipelines whose stages differ
  // (the output layer's) lose less to oversubscription than layouts whose ranks all compute at once.
  const double per_node_ranks = std::min(w.gpus, c.devices_per_node);
  if (c.shared_cores > 0 && per_node_ranks > c.shared_cores) {
    const double per_rank_fixed = out.step_time_s - M * t_mb_slowest - bubble;  // DP, optimizer, overhead
    const double busy = per_node_ranks * (M * t_mb_total / l.pp + per_rank_fixed);
    const double shared = busy / c.shared_cores;
    if (shared > out.step_time_s) out.time["oversubscription"] = shared - out.step_time_s;
    out.step_time_s = std::max(out.step_time_s, shared);
  }
  // The parts as the slowest stage spends them; the others wait for it (that wait is in no part).
  const double Mx = M * layers;
  out.time["compute.attention_gemm"] = Mx * qkv;
  out.time["compute.attention_core"] = Mx * attn_core;
  out.time["compute.experts"] = Mx * moe * experts;
  out.time["compute.router"] = Mx * moe * router;
  out.time["compute.shared_expert"] = Mx * moe * shared;
  out.time["compute.dense_mlp"] = Mx * (1 - moe) * dense_mlp;
  out.time["compute.memory_bound"] = Mx * (elementwise + moe * permute);
  out.time["compute.output_layer"] = M * head_on_slowest;
  out.time["compute.recompute"] = Mx * recompute;
  out.time["comm.tp"] = Mx * tp_comm;
  out.time["comm.etp"] = Mx * etp_comm;
  out.time["comm.ep"] = Mx * ep_comm;
  out.time["comm.cp"] = Mx * cp_comm;
  out.time["comm.pp"] = M * pp_p2p;
  out.time["comm.dp"] = dp_exposed;
  out.time["bubble"] = bubble;
  out.time["optimizer"] = optimizer;
  out.time["overhead"] = c.step_overhead_s;

  const double tokens = double(w.global_batch) * w.seq;
  out.tokens_per_s_per_gpu = tokens / out.step_time_s / w.gpus;
  out.mfu = flops_per_token(m, w.seq) * tokens / (out.step_time_s * w.gpus * c.peak_flops);
  const MemoryEstimate mem = estimate_memory(m, l, c, w.seq, M);
  out.memory_bytes = mem.total;
  out.memory = mem.parts;
  out.fits = mem.total <= c.memory_bytes;
  return out;
}

}  // namespace foldmoe::plan
