#include "train/memory_estimate.h"

#include <algorithm>
#include <memory>

#include "core/arena.h"
#include "core/check.h"
#include "model/transformer_layer.h"
#include "parallel/pipeline_schedule.h"
#include "parallel/pipeline_stages.h"
#include "parallel/vocab_parallel.h"

namespace foldmoe {
namespace {

// A group that has a size and a rank but never communicates: layers only read sizes while they
// register their (sharded) parameters.
class PlaceholderGroup final : public Communicator {
 public:
  explicit PlaceholderGroup(int size) : size_(size) {}
  int rank() const override { return 0; }
  int size() const override { return size_; }
  std::string name() const override { return "placeholder"; }
  void all_reduce(float*, int64_t, ReduceOp) override { fail(); }
  void all_reduce(double*, int64_t, ReduceOp) override { fail(); }
  void all_gather(const float*, float*, int64_t) override { fail(); }
  void all_gather_v(const float*, float*, std::span<const int64_t>) override { fail(); }
  void reduce_scatter(const float*, float*, int64_t) override { fail(); }
  void reduce_scatter_v(const float*, float*, std::span<const int64_t>) override { fail(); }
  void all_to_all_v(const float*, std::span<const int64_t>, float*, std::span<const int64_t>) override { fail(); }
  void broadcast(float*, int64_t, int) override { fail(); }
  void broadcast_bytes(void*, int64_t, int) override { fail(); }
  void send(const float*, int64_t, int, int) override { fail(); }
  void recv(float*, int64_t, int, int) override { fail(); }
  void barrier() override { fail(); }

 private:
  [[noreturn]] static void fail() { FOLDMOE_CHECK(false, "placeholder group used for communication"); }
  int size_;
};

ProcessGroups placeholder_groups(const ParallelSizes& s) {
  auto g = [](int n) { return std::make_shared<PlaceholderGroup>(n); };
  ProcessGroups p;
  p.world = g(s.world), p.tp = g(s.tp), p.cp = g(s.cp), p.dp = g(s.dp), p.pp = g(s.pp);
  p.dp_cp = g(s.dp * s.cp), p.tp_cp = g(s.tp * s.cp), p.tp_pp = g(s.tp * s.pp), p.tp_dp_cp = g(s.tp * s.dp * s.cp);
  p.etp = g(s.etp), p.ep = g(s.ep), p.edp = g(s.edp), p.etp_ep = g(s.etp * s.ep), p.etp_ep_pp = g(s.etp * s.ep * s.pp);
  p.embedding = g(s.pp > 1 ? 2 : 1);
  p.sizes = s;
  return p;
}

int64_t numel(const ParamArena& a) {
  int64_t n = 0;
  for (int i = 0; i < a.size(); ++i) n += shape_numel(a.spec(i).shape);
  return n;
}

// The all-to-all dispatcher (moe/dispatcher_alltoall.cpp) and the experts (moe/experts.cpp), even
// routing: S rows this rank sends (permutation 1), R = S·etp rows its experts process. Which buffers
// exist depends on the layout: the exchange over EP, the gather over ETP and the second permutation
// (several local experts and more than one exchange member) each add their own.
struct AlltoallShape {
  double H, F, S, R;
  bool ep, etp, permute2;
  AlltoallShape(const Config& cfg, const ParallelSizes& s, double N_loc)
      : H(cfg.model.hidden),
        F(cfg.moe_ffn()),
        S(N_loc * cfg.moe.topk),
        R(S * s.etp),
        ep(s.ep > 1),
        etp(s.etp > 1),
        permute2(cfg.moe.num_experts / s.ep > 1 && s.ep * s.etp > 1) {}
  double rows(double n) const { return n * (H + 1); }  // a row buffer and its routing probabilities
};

// Floats that one MoE layer's cache holds from its forward to its backward.
double alltoall_cached(const AlltoallShape& a, double etp) {
  double f = a.rows(a.S);            // x_perm, p_perm
  if (a.ep) f += a.rows(a.S);        // x_recv, p_recv
  if (a.etp) f += a.rows(a.R);       // x_gath, p_gath
  if (a.permute2) f += a.rows(a.R);  // x_sort, p_sort
  return f + 4 * a.R * a.F / etp;    // experts: FC1 output (2F), activation, scaled activation
}

// Floats of the buffers a MoE layer uses only while its forward combines or while its backward runs;
// the layers lend them from one set per thread (moe/moe_layer.cpp), so a rank holds them once.
double alltoall_transient(const AlltoallShape& a, double etp) {
  double f = a.R * a.H;                              // the experts' output rows
  if (a.permute2) f += a.R * a.H;                    // y_gath
  if (a.etp) f += a.S * a.H;                         // y_recv
  if (a.ep) f += a.S * a.H;                          // y_perm
  f += a.S * a.H;                                    // dy_perm
  if (a.ep) f += a.S * a.H + a.rows(a.S);            // dy_recv; dx_perm, dp_perm
  if (a.etp) f += a.R * a.H + a.rows(a.S);           // dy_gath; dx_recv, dp_recv
  if (a.permute2) f += a.R * a.H + a.rows(a.R);      // dy_sort; dx_gath, dp_gath
  return f + 3 * a.R * a.F / etp + a.R * a.H + a.R;  // experts: dhp, dab (2F), dx, dp
}

}  // namespace

double layer_activation_bytes(const Config& cfg, const ParallelSizes& s, int layer) {
  const double H = cfg.model.hidden, D = cfg.head_dim(), A = cfg.model.heads, G = cfg.model.kv_heads;
  const double N = double(cfg.train.seq_len) / s.cp * cfg.train.micro_batch;  // rows of the CP piece
  const double N_loc = N / s.tp;                                              // SP piece
  const bool moe_only = cfg.train.recompute == "moe";
  // Norms (input copy + rstd) and the residual-branch scratch of the layer.
  double f = 2 * (N_loc * H + N_loc) + 2 * N_loc * H;
  // Attention: q, k, v, o and the log-sum-exp of the heads held here; the gathered input with SP.
  f += N * (2 * A + 2 * G) * D / s.tp + N * A / s.tp + (s.tp > 1 ? N * H : 0);
  if (!cfg.is_moe_layer(layer)) {
    f += N * 3 * cfg.model.ffn / s.tp + (s.tp > 1 ? N * H : 0);  // gate/up output and activation
  } else {
    const double E = cfg.moe.num_experts, k = cfg.moe.topk, F = cfg.moe_ffn();
    double moe = N_loc * H + 8 * N_loc * E;  // input copy, router logits/probs/maps
    moe += cfg.moe.dispatcher == "alltoall" ? alltoall_cached(AlltoallShape(cfg, s, N_loc), s.etp)
                                            : 3 * N_loc * k * s.etp * H + 4 * N_loc * k * s.etp * F / s.etp;
    if (cfg.moe.shared_expert_ffn_hidden_size > 0)
      moe += N * 3 * cfg.moe.shared_expert_ffn_hidden_size / s.tp + (s.tp > 1 ? N * H : 0);
    // recompute = moe keeps the block input and its aux gradients only.
    f += moe_only ? N_loc * H + N_loc * E : moe;
  }
  return 4 * f;
}

std::vector<StageMemory> estimate_stage_memory(const Config& cfg, const ParallelSizes& s) {
  FOLDMOE_CHECK(cfg.model.vocab > 0, "memory estimate needs a resolved vocabulary");
  const int pp = s.pp, v = pp > 1 ? cfg.parallel.vpp : 1;
  const PipelineLayout layout =
      PipelineLayout::of(cfg.model.layers, pp, v, pp > 1 ? cfg.parallel.pipeline_layers : std::vector<int>{});
  const ProcessGroups groups = placeholder_groups(s);
  const int M = cfg.micro_batches_per_replica(s.dp);
  const VocabShard vocab = VocabShard::split(cfg.model.vocab, s.tp, 0);
  const double H = cfg.model.hidden, N = double(cfg.train.seq_len) / s.cp * cfg.train.micro_batch;
  const bool zero1 = cfg.parallel.distributed_optimizer, full = cfg.train.recompute == "full";
  std::vector<StageMemory> out;
  for (int r = 0; r < pp; ++r) {
    StageMemory m;
    m.stage = r;
    m.embedding = layout.stage_has_embedding(r);
    m.head = layout.stage_has_head(r);
    ParamArena dense(ArenaKind::Dense), expert(ArenaKind::Expert);
    std::vector<std::unique_ptr<TransformerLayer>> layers;
    for (int c = 0; c < v; ++c) {
      m.chunk_layers.push_back(layout.layers_of(r, c));
      for (int l : layout.layers_of(r, c))
        layers.push_back(std::make_unique<TransformerLayer>(cfg, l, dense, expert, groups));
    }
    m.dense_params =
        numel(dense) + (m.embedding ? vocab.rows * cfg.model.hidden : 0) +
        (m.head ? (cfg.model.tie_embeddings && m.embedding ? 0 : vocab.rows * cfg.model.hidden) + cfg.model.hidden : 0);
    m.expert_params = numel(expert);
    const double P = double(m.dense_params + m.expert_params);
    m.weight_bytes = 4 * P;
    m.grad_bytes = 4 * P;
    m.optimizer_bytes = zero1 ? 8 * (double(m.dense_params) / (s.dp * s.cp) + double(m.expert_params) / s.edp) : 8 * P;
    // In flight: the most (micro-batch, chunk) pairs between their forward and backward.
    const PipeScheduleSpec spec{.pp = pp, .micro_batches = M, .vpp = v};
    int now = 0;
    for (const PipeAction& a : pipeline_compute_schedule(spec, r)) {
      now += a.op == PipeOp::Forward ? 1 : -1;
      m.micro_batches_in_flight = std::max(m.micro_batches_in_flight, now);
    }
    // Per in-flight chunk: every layer's caches, or (recompute = full) the chunk input only, plus
    // one chunk's caches re-made during its backward.
    double largest_chunk = 0;  // every layer's caches of the stage's largest chunk
    for (int c = 0; c < v; ++c) {
      double b = 0;
      for (int l : layout.layers_of(r, c)) b += layer_activation_bytes(cfg, s, l);
      largest_chunk = std::max(largest_chunk, b);
    }
    const double per_chunk = full ? 4 * N / s.tp * H : largest_chunk;
    m.activation_bytes = m.micro_batches_in_flight * (per_chunk + 4 * N / s.tp * H) + (full ? largest_chunk : 0);
    if (m.head) m.activation_bytes += 4 * N * double(vocab.rows) * m.micro_batches_in_flight;  // logits
    bool has_moe = false;
    for (const auto& chunk : m.chunk_layers)
      for (int l : chunk) has_moe = has_moe || cfg.is_moe_layer(l);
    if (has_moe && cfg.moe.dispatcher == "alltoall")
      m.activation_bytes += 4 * alltoall_transient(AlltoallShape(cfg, s, N / s.tp), s.etp);
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace foldmoe
