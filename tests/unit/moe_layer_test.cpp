// The whole MoE block (docs/moe.md §12 invariants that apply to one process) and a finite-difference
// check of its backward: input, router weight and expert weight gradients.
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "core/rng.h"
#include "moe/moe_layer.h"
#include "moe_cache_inspect.h"
#include "ops/linear.h"
#include "ops/swiglu.h"

using namespace foldmoe;

namespace {

Config small_config(int E = 4, int k = 2, int H = 8, int F = 6) {
  Config c;
  c.model.hidden = H;
  c.model.layers = 2;
  c.model.init_std = 0.5;
  c.moe.num_experts = E;
  c.moe.topk = k;
  c.moe.ffn_hidden_size = F;
  c.moe.aux_loss_coeff = {0.0};
  c.moe.z_loss_coeff.reset();
  c.train.seed = 42;
  return c;
}

struct Harness {
  Config cfg;
  ParamArena dense{ArenaKind::Dense}, expert{ArenaKind::Expert};
  ProcessGroups groups = ProcessGroups::single_process();
  std::unique_ptr<MoELayer> layer;
  std::unique_ptr<MoELayer::Cache> cache;
  int64_t S, B, N, H;
  std::vector<float> x, y, dx;
  MoEStats stats;

  Harness(const Config& c, int64_t S_, int64_t B_, uint64_t xseed = 1) : cfg(c), S(S_), B(B_) {
    layer = std::make_unique<MoELayer>(cfg, 0, dense, expert, groups);
    dense.allocate();
    expert.allocate();
    dense.initialize(uint64_t(cfg.train.seed));
    expert.initialize(uint64_t(cfg.train.seed));
    cache = layer->make_cache();
    H = cfg.model.hidden;
    N = S * B;
    x.resize(size_t(N * H));
    const CounterRng rng(xseed, "moe-layer-input");
    for (size_t i = 0; i < x.size(); ++i) x[i] = float(rng.normal(i));
    y.resize(x.size());
    dx.resize(x.size());
  }
  MoEStepContext ctx(bool training = true) const {
    MoEStepContext c;
    c.training = training;
    c.S_loc = S, c.B = B, c.S_full = S;
    return c;
  }
  void forward(bool training = true) {
    layer->forward(x.data(), y.data(), N, ctx(training), *cache, &stats);
  }
  void backward(const std::vector<float>& dy) { layer->backward(*cache, dy.data(), dx.data()); }
  float* param(const std::string& name, bool grad = false) {
    int i = dense.find(name);
    ParamArena* a = &dense;
    if (i < 0) i = expert.find(name), a = &expert;
    EXPECT_GE(i, 0) << name;
    return (grad ? a->grads() : a->params()) + a->offset(i);
  }
  int64_t numel(const std::string& name) {
    int i = dense.find(name);
    if (i >= 0) return shape_numel(dense.spec(i).shape);
    return shape_numel(expert.spec(expert.find(name)).shape);
  }
};

std::vector<float> upstream(int64_t n, uint64_t seed = 77) {
  std::vector<float> g(static_cast<size_t>(n));
  const CounterRng rng(seed, "moe-layer-dy");
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(rng.normal(i));
  return g;
}

// Objective of the FD check: Σ y·G + Σ α·(logged aux values) (mean mode, σ = 1, κ = 1).
double objective(Harness& h, const std::vector<float>& G) {
  h.layer->finalize_global_batch();  // global-aux running mean restarts: c̄ = this micro-batch's counts
  h.forward();
  double s = 0;
  for (size_t i = 0; i < G.size(); ++i) s += double(h.y[i]) * G[i];
  const MoEConfig& m = h.cfg.moe;
  for (size_t t = 0; t < m.load_balancing_type.size(); ++t) {
    const std::string& ty = m.load_balancing_type[t];
    const double a = m.aux_loss_coeff[t];
    if (ty == "aux_loss") s += a * h.stats.aux_loss;
    if (ty == "seq_aux_loss") s += a * h.stats.seq_aux_loss;
    if (ty == "global_aux_loss") s += a * h.stats.global_aux_loss;
  }
  if (m.z_loss_coeff) s += *m.z_loss_coeff * h.stats.z_loss;
  return s;
}

// Central differences over every element of `v` (n floats), skipping points where the routing
// decisions (final map) change inside the stencil.
void check_fd(Harness& h, const std::vector<float>& G, float* v, const float* grad, int64_t n, const std::string& what,
              int* checked) {
  const std::vector<uint8_t> base_map = moe::cached_final_map(*h.cache);
  for (int64_t i = 0; i < n; ++i) {
    const float orig = v[i];
    const float step = 1e-2f;
    v[i] = orig + step;
    const double fp = objective(h, G);
    const bool same_p = moe::cached_final_map(*h.cache) == base_map;
    v[i] = orig - step;
    const double fm = objective(h, G);
    const bool same_m = moe::cached_final_map(*h.cache) == base_map;
    v[i] = orig;
    if (!same_p || !same_m) continue;
    const double fd = (fp - fm) / (2.0 * step);
    EXPECT_NEAR(grad[i], fd, 3e-3 + 2e-2 * std::fabs(fd)) << what << "[" << i << "]";
    ++*checked;
  }
}

void run_fd(const Config& cfg, const std::string& label) {
  SCOPED_TRACE(label);
  Harness h(cfg, 4, 2);
  const std::vector<float> G = upstream(h.N * h.H);
  // Analytic gradients at the base point.
  h.layer->finalize_global_batch();
  h.forward();
  h.dense.zero_grad();
  h.expert.zero_grad();
  h.backward(G);
  const std::vector<float> dx = h.dx;
  const std::vector<float> dense_g(h.dense.grads(), h.dense.grads() + h.dense.total());
  const std::vector<float> expert_g(h.expert.grads(), h.expert.grads() + h.expert.total());
  int checked = 0;
  check_fd(h, G, h.x.data(), dx.data(), h.N * h.H, "dx", &checked);
  auto check_param = [&](const std::string& name, bool is_expert) {
    ParamArena& a = is_expert ? h.expert : h.dense;
    const int i = a.find(name);
    ASSERT_GE(i, 0) << name;
    const std::vector<float>& g = is_expert ? expert_g : dense_g;
    check_fd(h, G, a.params() + a.offset(i), g.data() + a.offset(i), shape_numel(a.spec(i).shape), name, &checked);
  };
  check_param("layers.0.moe.router.weight", false);
  for (int e = 0; e < cfg.moe.num_experts; ++e) {
    check_param("layers.0.moe.experts." + std::to_string(e) + ".fc1", true);
    check_param("layers.0.moe.experts." + std::to_string(e) + ".fc2", true);
  }
  if (cfg.moe.router_bias) check_param("layers.0.moe.router.bias", false);
  if (cfg.moe.shared_expert_ffn_hidden_size > 0) {
    check_param("layers.0.moe.shared.fc1", false);
    check_param("layers.0.moe.shared.fc2", false);
    if (cfg.moe.shared_expert_gate) check_param("layers.0.moe.shared_gate.weight", false);
  }
  EXPECT_GT(checked, 200);
}

Config with_losses(Config c) {
  c.moe.load_balancing_type = {"aux_loss", "seq_aux_loss", "global_aux_loss"};
  c.moe.aux_loss_coeff = {0.3, 0.2, 0.1};
  c.moe.z_loss_coeff = 0.05;
  return c;
}

}  // namespace

TEST(MoeLayer, FiniteDifferencePostSoftmax) {
  Config c = with_losses(small_config());
  c.moe.router_bias = true;
  c.moe.shared_expert_ffn_hidden_size = 5;
  c.moe.shared_expert_gate = true;
  run_fd(c, "post-softmax, dropless, shared+gate, router bias");
  c.moe.input_jitter_eps = 0.05;
  c.moe.dispatcher = "allgather";
  run_fd(c, "post-softmax, jitter, allgather");
}

TEST(MoeLayer, FiniteDifferencePreSoftmaxCapacity) {
  Config c = with_losses(small_config());
  c.moe.pre_softmax = true;
  c.moe.topk_scaling_factor = 1.5;
  c.moe.capacity_factor = 1.0;
  c.moe.drop_policy = "probs";
  run_fd(c, "pre-softmax, CF 1.0 probs");
  c.moe.pad_to_capacity = true;
  run_fd(c, "pre-softmax, CF 1.0 probs, pad");
}

TEST(MoeLayer, FiniteDifferenceSigmoidCapacity) {
  Config c = with_losses(small_config());
  c.moe.score_function = "sigmoid";
  c.moe.capacity_factor = 0.75;
  c.moe.drop_policy = "position";
  run_fd(c, "sigmoid k=2, CF 0.75 position");
  c.moe.pad_to_capacity = true;
  c.moe.num_groups = 2;
  c.moe.group_topk = 1;
  run_fd(c, "sigmoid k=2, CF 0.75 position, pad, groups");
  Config c1 = with_losses(small_config(4, 1));
  c1.moe.score_function = "sigmoid";
  run_fd(c1, "sigmoid k=1");
}

// Invariant 5: W_g = 0 -> aux, seq-aux and global-aux logged values are exactly 1.0.
TEST(MoeLayer, UniformRoutingLogsOne) {
  for (const char* score : {"softmax", "sigmoid"}) {
    Config c = with_losses(small_config(8, 2));
    c.moe.score_function = score;
    Harness h(c, 8, 2);
    std::fill(h.param("layers.0.moe.router.weight"), h.param("layers.0.moe.router.weight") + 8 * h.H, 0.0f);
    h.forward();
    EXPECT_EQ(h.stats.aux_loss, 1.0) << score;
    EXPECT_EQ(h.stats.seq_aux_loss, 1.0) << score;
    EXPECT_EQ(h.stats.global_aux_loss, 1.0) << score;
    int64_t routed = 0;
    for (int64_t v : h.stats.routed_E) routed += v;
    EXPECT_EQ(routed, h.N * 2);
  }
}

// Invariant 6: E = 1, k = 1 equals a dense SwiGLU MLP with the same weights; router grad is 0.
TEST(MoeLayer, SingleExpertEqualsDenseMlp) {
  Config c = small_config(1, 1, 8, 6);
  c.moe.aux_loss_coeff = {0.1};
  Harness h(c, 5, 3);
  h.forward();
  const std::vector<float> G = upstream(h.N * h.H);
  h.backward(G);
  const float* w1 = h.param("layers.0.moe.experts.0.fc1");
  const float* w2 = h.param("layers.0.moe.experts.0.fc2");
  const int64_t N = h.N, H = h.H, F = 6;
  std::vector<float> ab(size_t(N * 2 * F)), hh(size_t(N * F)), y(size_t(N * H));
  ops::linear_forward<float>(h.x.data(), w1, ab.data(), N, H, 2 * F);
  ops::swiglu_forward<float>(ab.data(), hh.data(), N, F);
  ops::linear_forward<float>(hh.data(), w2, y.data(), N, F, H);
  for (size_t i = 0; i < y.size(); ++i) EXPECT_NEAR(h.y[i], y[i], 1e-6f);
  std::vector<float> dh(size_t(N * F)), dab(size_t(N * 2 * F)), dx(size_t(N * H));
  std::vector<float> g1(size_t(2 * F * H), 0.0f), g2(size_t(H * F), 0.0f);
  ops::linear_backward<float>(hh.data(), w2, G.data(), dh.data(), g2.data(), N, F, H);
  ops::swiglu_backward<float>(ab.data(), dh.data(), dab.data(), N, F);
  ops::linear_backward<float>(h.x.data(), w1, dab.data(), dx.data(), g1.data(), N, H, 2 * F);
  const float* e1 = h.param("layers.0.moe.experts.0.fc1", true);
  const float* e2 = h.param("layers.0.moe.experts.0.fc2", true);
  for (size_t i = 0; i < g1.size(); ++i) EXPECT_NEAR(e1[i], g1[i], 1e-5f);
  for (size_t i = 0; i < g2.size(); ++i) EXPECT_NEAR(e2[i], g2[i], 1e-5f);
  for (size_t i = 0; i < dx.size(); ++i) EXPECT_NEAR(h.dx[i], dx[i], 1e-5f);
  const float* gr = h.param("layers.0.moe.router.weight", true);
  for (int64_t i = 0; i < H; ++i) EXPECT_EQ(gr[i], 0.0f);
}

// Invariant 7: experts that receive no tokens get exactly zero gradients.
TEST(MoeLayer, ZeroTokenExpertsGetZeroGradients) {
  for (const char* disp : {"alltoall", "allgather"}) {
    Config c = small_config(6, 2);
    c.moe.router_bias = true;
    c.moe.dispatcher = disp;
    Harness h(c, 6, 2);
    float* b = h.param("layers.0.moe.router.bias");
    b[2] = -100.0f, b[5] = -100.0f;
    h.forward();
    EXPECT_EQ(h.stats.routed_E[2], 0);
    EXPECT_EQ(h.stats.routed_E[5], 0);
    const std::vector<int64_t> tpe = moe::cached_tokens_per_local_expert(*h.cache);
    EXPECT_EQ(tpe[2], 0);
    EXPECT_EQ(tpe[5], 0);
    h.backward(upstream(h.N * h.H));
    for (int e = 0; e < 6; ++e)
      for (const char* w : {".fc1", ".fc2"}) {
        const std::string name = "layers.0.moe.experts." + std::to_string(e) + w;
        const float* g = h.param(name, true);
        double s = 0;
        for (int64_t i = 0; i < h.numel(name); ++i) s += std::fabs(g[i]);
        if (e == 2 || e == 5)
          EXPECT_EQ(s, 0.0) << name;
        else
          EXPECT_GT(s, 0.0) << name;
      }
  }
}

namespace {
struct RunResult {
  std::vector<float> y, dx, dense_g, expert_g;
  std::vector<int64_t> tpe;
  MoEStats stats;
};
RunResult run_once(const Config& c, int64_t S = 8, int64_t B = 2) {
  Harness h(c, S, B);
  h.forward();
  h.backward(upstream(h.N * h.H));
  RunResult r;
  r.y = h.y, r.dx = h.dx, r.stats = h.stats;
  r.dense_g.assign(h.dense.grads(), h.dense.grads() + h.dense.total());
  r.expert_g.assign(h.expert.grads(), h.expert.grads() + h.expert.total());
  r.tpe = moe::cached_tokens_per_local_expert(*h.cache);
  return r;
}
void expect_close(const std::vector<float>& a, const std::vector<float>& b, float tol, const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], tol) << what << "[" << i << "]";
}
}  // namespace

// Invariant 3: padded and unpadded capacity runs agree; padded experts get exactly C_eff rows.
TEST(MoeLayer, PadVersusNoPad) {
  for (const char* pol : {"probs", "position"}) {
    Config c = with_losses(small_config(4, 2));
    c.moe.capacity_factor = 0.6;
    c.moe.drop_policy = pol;
    const RunResult a = run_once(c);
    c.moe.pad_to_capacity = true;
    const RunResult b = run_once(c);
    expect_close(a.y, b.y, 1e-6f, "y");
    expect_close(a.dx, b.dx, 1e-6f, "dx");
    expect_close(a.dense_g, b.dense_g, 1e-6f, "dense grads");
    expect_close(a.expert_g, b.expert_g, 1e-6f, "expert grads");
    const int64_t C = int64_t(std::ceil(((16.0 * 2) / 4) * 0.6));
    for (int64_t t : b.tpe) EXPECT_EQ(t, C);
    EXPECT_EQ(a.stats.kept_E, b.stats.kept_E);
    for (int64_t t : a.tpe) EXPECT_LE(t, C);
  }
}

// Invariant 10: CF >= E/k equals dropless exactly.
TEST(MoeLayer, LargeCapacityEqualsDropless) {
  Config c = with_losses(small_config(4, 2));
  const RunResult a = run_once(c);
  int64_t routed = 0;
  for (int64_t v : a.stats.routed_E) routed += v;
  EXPECT_EQ(routed, 16 * 2);
  for (const char* pol : {"probs", "position"})
    for (bool pad : {false, true}) {
      c.moe.capacity_factor = 2.0;
      c.moe.drop_policy = pol;
      c.moe.pad_to_capacity = pad;
      const RunResult b = run_once(c);
      if (!pad) {
        EXPECT_EQ(a.y, b.y);
        EXPECT_EQ(a.dx, b.dx);
        EXPECT_EQ(a.dense_g, b.dense_g);
        EXPECT_EQ(a.expert_g, b.expert_g);
      } else {
        expect_close(a.y, b.y, 1e-6f, "y pad");
        expect_close(a.dx, b.dx, 1e-6f, "dx pad");
        for (int64_t t : b.tpe) EXPECT_EQ(t, 16);
      }
    }
}

// AllGather == AlltoAll on one rank (outputs and every gradient), incl. capacity and padding.
TEST(MoeLayer, AllGatherEqualsAlltoAll) {
  for (int variant = 0; variant < 3; ++variant) {
    Config c = with_losses(small_config(8, 2, 16, 12));
    c.moe.shared_expert_ffn_hidden_size = 8;
    if (variant >= 1) c.moe.capacity_factor = 0.8;
    if (variant == 2) c.moe.pad_to_capacity = true;
    const RunResult a = run_once(c, 8, 4);
    c.moe.dispatcher = "allgather";
    const RunResult b = run_once(c, 8, 4);
    expect_close(a.y, b.y, 1e-6f, "y");
    expect_close(a.dx, b.dx, 1e-6f, "dx");
    expect_close(a.dense_g, b.dense_g, 1e-6f, "dense grads");
    expect_close(a.expert_g, b.expert_g, 1e-6f, "expert grads");
  }
}

// Invariant 11: the expert bias moves by u·sign(c̄ − c) per expert after one global batch;
// combine weights stay unbiased; evaluation forwards do not count.
TEST(MoeLayer, ExpertBiasUpdate) {
  Config c = small_config(4, 2);
  c.moe.score_function = "sigmoid";
  c.moe.enable_expert_bias = true;
  c.moe.bias_update_rate = 0.01;
  Harness h(c, 8, 2);
  ASSERT_EQ(h.layer->expert_bias().size(), 4u);
  h.forward(/*training=*/false);
  h.forward(true);
  const std::vector<int64_t> counts = h.stats.routed_E;
  h.forward(true);  // a second micro-batch of the same global batch
  double mean = 0;
  for (int64_t v : counts) mean += 2.0 * double(v) / 4.0;
  h.layer->finalize_global_batch();
  const std::vector<float> bias = h.layer->expert_bias();
  for (int e = 0; e < 4; ++e) {
    const double d = mean - 2.0 * double(counts[size_t(e)]);
    const float want = d > 0 ? 0.01f : (d < 0 ? -0.01f : 0.0f);
    EXPECT_EQ(bias[size_t(e)], want) << e;
  }
  // Counts were reset: a second finalize without forwards moves the bias by 0.
  h.layer->finalize_global_batch();
  EXPECT_EQ(h.layer->expert_bias(), bias);
  // A large bias changes the selection only.
  h.layer->expert_bias() = {0, 0, 0, 10.0f};
  h.forward(false);
  EXPECT_EQ(h.stats.routed_E[3], h.N);
}

TEST(MoeLayer, ParameterNamesAndInit) {
  Config c = small_config(4, 2);
  c.moe.shared_expert_ffn_hidden_size = 5;
  c.moe.shared_expert_gate = true;
  Harness h(c, 2, 1);
  const int r = h.dense.find("layers.0.moe.router.weight");
  ASSERT_GE(r, 0);
  EXPECT_TRUE(h.dense.spec(r).sequence_parallel);
  EXPECT_EQ(h.dense.spec(r).shape, (Shape{4, 8}));
  EXPECT_GE(h.dense.find("layers.0.moe.shared.fc1"), 0);
  EXPECT_GE(h.dense.find("layers.0.moe.shared.fc2"), 0);
  const int g = h.dense.find("layers.0.moe.shared_gate.weight");
  ASSERT_GE(g, 0);
  EXPECT_TRUE(h.dense.spec(g).sequence_parallel);
  for (int e = 0; e < 4; ++e) {
    const int i = h.expert.find("layers.0.moe.experts." + std::to_string(e) + ".fc1");
    ASSERT_GE(i, 0);
    EXPECT_EQ(h.expert.spec(i).shape, (Shape{12, 8}));
    const int j = h.expert.find("layers.0.moe.experts." + std::to_string(e) + ".fc2");
    EXPECT_EQ(h.expert.spec(j).shape, (Shape{8, 6}));
    EXPECT_DOUBLE_EQ(h.expert.spec(j).init_std, 0.5 / 2.0);
  }
  EXPECT_EQ(h.dense.find("layers.0.moe.experts.0.fc1"), -1);
}
