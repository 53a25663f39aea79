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

}  // namespace

double layer_activation_bytes(const Config& cfg, const ParallelSizes& s, int layer) {
  const double H = cfg.model.hidden, D = cfg.head_dim(), A = cfg.model.heads, G = cfg.model.kv_heads;
  const double N = double(cfg.train.seq_len) / s.cp * cfg.train.micro_batch;  // rows of the CP piece
  const double N_loc = N / s.tp;                                                // SP piece
  const bool moe_only = cfg.train.recompute == "moe";
  // Norms (input copy + rstd) and the residual-branch scratch of the layer.
  double f = 2 * (N_loc * H + N_loc) + 2 * N_loc * H;
  // Attention: q, k, v, o and the log-sum-exp of the heads held here; the gathered input with SP.
  f += N * (2 * A + 2 * G) * D / s.tp + N * A / s.tp + (s.tp > 1 ? N * H : 0);
  if (!cfg.is_moe_layer(layer)) {
    f += N * 3 * cfg.model.ffn / s.tp + (s.tp > 1 ? N * H : 0);  // gate/up output and activation
  } else {
    const double E = cfg.moe.num_experts, k = cfg.moe.topk, F = cfg.moe_ffn();
    const double R = N_loc * k * s.etp;  // expert rows per rank (even routing; ETP gathers over etp)
    double moe = N_loc * H + 8 * N_loc * E;  // input copy, router logits/probs/maps
    moe += 3 * R * H + 4 * R * F / s.etp;     // permuted/received/sorted rows; expert FC1 out, act, scaled act
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
      for (int l : layout.layers_of(r, c)) layers.push_back(std::make_unique<TransformerLayer>(cfg, l, dense, expert, groups));
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
    out.push_back(std::move(m));
  }
  return out;
}

}  // namespace foldmoe
