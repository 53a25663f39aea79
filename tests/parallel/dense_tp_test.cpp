// Dense tensor-parallel modules under mpirun, sharded vs unsharded (docs/dense-parallel.md §1–§3, §12), TP 2 and
// 4 with sequence parallelism (TP 3 on 3 ranks, TP 8 on 8), DP = world/TP replicas:
//  - SP gather / SP reduce-scatter: forward against the unsharded op and the conjugate identity
//    Σ_r ⟨gather(x)_r, Y_r⟩ = Σ_r ⟨x_r, reduce_scatter(Y)_r⟩ (each is the other's backward);
//  - AttentionBlock (GQA + RoPE) and DenseMlp: outputs and input gradients of the local SP rows,
//    and weight gradients gathered through ParamSpec.global_index (summed over the world) vs the
//    single-rank modules on each replica's full sequence (summed over replicas);
//  - vocab-parallel embedding and cross-entropy, with V not a multiple of 128·TP (padding rows
//    filled with garbage must stay invisible; a rank whose whole range is padding included).
#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "model/attention_block.h"
#include "model/dense_mlp.h"
#include "moe_parallel_util.h"
#include "ops/cross_entropy.h"
#include "ops/embedding.h"
#include "parallel/mappings.h"
#include "parallel/vocab_parallel.h"

using namespace foldmoe;
using namespace foldmoe::partest;

namespace {

std::vector<Layout> tp_layouts() {
  std::vector<Layout> all;
  for (int tp : {2, 4, 3, 8}) all.push_back({tp, 1, 1});
  return fitting(all);
}

constexpr int64_t kS = 24, kB = 2, kH = 16;

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace

TEST(DenseTp, SpGatherReduceScatterConjugatePair) {
  for (const Layout& l : tp_layouts()) {
    SCOPED_TRACE(l.str());
    const ProcessGroups g = layout_groups(l);
    Communicator& tp = *g.tp;
    const int TP = tp.size(), t = tp.rank();
    const int64_t rows = 5, H = 3, me = world().rank();
    // Forward of the gather: the unsharded tensor is the concatenation of the pieces.
    auto piece = [&](int r) { return randn(rows * H, uint64_t(100 + r + 1000 * g.dp->rank()), "sp-x"); };
    const std::vector<float> x = piece(t);
    std::vector<float> buf;
    const float* full = sp_gather(tp, x.data(), rows, H, buf);
    std::vector<float> want;
    for (int r = 0; r < TP; ++r) {
      const std::vector<float> p = piece(r);
      want.insert(want.end(), p.begin(), p.end());
    }
    expect_close(std::vector<float>(full, full + rows * TP * H), want, 0.0, 0.0, "sp_gather");
    // Forward of the reduce-scatter: block t of Σ_r Y_r.
    auto partial = [&](int r) { return randn(rows * TP * H, uint64_t(200 + r + 1000 * g.dp->rank()), "sp-y"); };
    const std::vector<float> Y = partial(t);
    std::vector<float> rs(static_cast<size_t>(rows * H));
    sp_reduce_scatter(tp, Y.data(), rows, H, rs.data());
    std::vector<float> sum(static_cast<size_t>(rows * H), 0.0f);
    for (int r = 0; r < TP; ++r) {
      const std::vector<float> p = partial(r);
      for (int64_t i = 0; i < rows * H; ++i) sum[size_t(i)] += p[size_t(t * rows * H + i)];
    }
    expect_close(rs, sum, 1e-6, 0.0, "sp_reduce_scatter");
    // Backward: each op's backward is the other (adjoint identity over the group).
    double lhs = dot(full, Y.data(), rows * TP * H), rhs = dot(x.data(), rs.data(), rows * H);
    tp.all_reduce(&lhs, 1);
    tp.all_reduce(&rhs, 1);
    EXPECT_NEAR(lhs, rhs, 1e-5 * (std::fabs(lhs) + 1)) << "rank " << me;
  }
}

namespace {

Config attn_config(int TP) {
  Config c;
  c.model.hidden = int(kH);
  c.model.layers = 2;
  c.model.kv_heads = TP == 2 ? 4 : TP;
  c.model.heads = 2 * c.model.kv_heads;
  c.model.head_dim = 4;
  c.model.init_std = 0.3;
  c.model.ffn = 128;
  c.moe.num_experts = 0;  // dense
  c.train.seed = 23;
  return c;
}

// Runs `module` (forward + backward on [S, B] rows) sharded and unsharded and compares.
template <typename Make, typename Run>
void module_sharded_vs_unsharded(const Layout& l, Make make, Run run, const std::string& what) {
  SCOPED_TRACE(l.str() + " " + what);
  const ProcessGroups g = layout_groups(l);
  const int TP = g.tp->size(), t = g.tp->rank(), DP = g.dp->size();
  const int64_t d = g.dp->rank(), N_loc = kS / TP * kB;
  const GlobalTokens gt(DP, kS, kB, kH);
  ParamArena dist_arena{ArenaKind::Dense}, ref_arena{ArenaKind::Dense};
  auto dist = make(dist_arena, g.tp, TP);
  auto ref = make(ref_arena, ProcessGroups::single_process().tp, TP);
  for (ParamArena* a : {&dist_arena, &ref_arena}) {
    a->allocate();
    a->initialize(23);
  }
  std::vector<float> y(static_cast<size_t>(N_loc * kH)), dx(static_cast<size_t>(N_loc * kH));
  run(*dist, gt.x_loc(d, t, TP), gt.dy_loc(d, t, TP), y.data(), dx.data());
  std::vector<float> yr(static_cast<size_t>(kS * kB * kH)), dxr(yr.size()), y_mine, dx_mine;
  for (int64_t dd = 0; dd < DP; ++dd) {
    run(*ref, gt.x_of(dd), gt.dy_of(dd), yr.data(), dxr.data());
    if (dd == d) {
      y_mine.assign(yr.begin() + t * N_loc * kH, yr.begin() + (t + 1) * N_loc * kH);
      dx_mine.assign(dxr.begin() + t * N_loc * kH, dxr.begin() + (t + 1) * N_loc * kH);
    }
  }
  expect_close(y, y_mine, 1e-5, 0.0, "y (local rows)");
  expect_close(dx, dx_mine, 1e-5, 0.0, "dx (local rows)");
  const auto got = logical_grads(dist_arena, param_names(ref_arena));
  EXPECT_EQ(got.size(), size_t(ref_arena.size()));
  for (const auto& [name, grad] : got) expect_close(grad, ref_grad(ref_arena, name), 1e-5, 0.0, "grad " + name);
}

}  // namespace

TEST(DenseTp, AttentionBlockShardedVsUnsharded) {
  std::vector<int32_t> pos(static_cast<size_t>(kS * kB));
  for (int64_t n = 0; n < kS * kB; ++n) pos[size_t(n)] = int32_t(n / kB);
  for (const Layout& l : tp_layouts()) {
    const Config cfg = attn_config(l.tp);
    struct Mod {
      AttentionBlock block;
      AttentionBlock::Cache cache;
      int TP;
    };
    module_sharded_vs_unsharded(
        l,
        [&](ParamArena& a, std::shared_ptr<Communicator> tp, int TP) {
          return std::make_unique<Mod>(Mod{AttentionBlock(cfg, 0, a, tp), {}, TP});
        },
        [&](Mod& m, const float* x, const float* dy, float* y, float* dx) {
          m.block.forward(x, y, kS, kB, pos.data(), m.cache);
          m.block.backward(dy, dx, kS, kB, pos.data(), m.cache);
        },
        "attention");
  }
}

TEST(DenseTp, DenseMlpShardedVsUnsharded) {
  const int64_t F = 24;
  for (const Layout& l : tp_layouts()) {
    struct Mod {
      DenseMlp mlp;
      DenseMlp::Cache cache;
      int64_t N_loc;
    };
    module_sharded_vs_unsharded(
        l,
        [&](ParamArena& a, std::shared_ptr<Communicator> tp, int) {
          const int64_t N_loc = kS * kB / tp->size();
          return std::make_unique<Mod>(Mod{DenseMlp("layers.0.mlp.", kH, F, 0.3, 0.2, a, tp), {}, N_loc});
        },
        [&](Mod& m, const float* x, const float* dy, float* y, float* dx) {
          m.mlp.forward(x, y, m.N_loc, m.cache);
          m.mlp.backward(dy, dx, m.N_loc, m.cache);
        },
        "dense mlp");
  }
}

TEST(DenseTp, VocabParallelEmbeddingAndCrossEntropy) {
  for (const Layout& l : tp_layouts())
    for (int64_t V : {300, 1000, 97}) {
      SCOPED_TRACE(l.str() + " V=" + std::to_string(V));
      const ProcessGroups g = layout_groups(l);
      Communicator& tp = *g.tp;
      const int TP = tp.size(), t = tp.rank();
      const int64_t H = 8, n = 24, n_loc = n / TP;
      const VocabShard s = VocabShard::of(V, TP, t);
      ASSERT_EQ(s.rows * TP % (128 * TP), 0);
      // Logical table and ids (replica-dependent).
      const uint64_t rs = uint64_t(10 + g.dp->rank());
      const std::vector<float> table = randn(V * H, 3, "vp-table");
      std::vector<int32_t> ids(static_cast<size_t>(n)), target(static_cast<size_t>(n));
      const CounterRng rng(rs, "vp-ids");
      for (int64_t i = 0; i < n; ++i) {
        ids[size_t(i)] = int32_t(rng.bits(uint64_t(i))[0] % uint32_t(V));
        target[size_t(i)] = int32_t(rng.bits(uint64_t(i))[1] % uint32_t(V));
      }
      ids[0] = int32_t(V - 1), target[1] = int32_t(V - 1);  // the last valid row and class
      // Shard: valid rows from the logical table, padding rows garbage.
      std::vector<float> shard(static_cast<size_t>(s.rows * H), 1e3f);
      for (int64_t r = 0; r < s.valid(); ++r)
        for (int64_t h = 0; h < H; ++h) shard[size_t(r * H + h)] = table[size_t((s.first + r) * H + h)];
      // Embedding forward: partials summed over tp = the unsharded embedding.
      std::vector<float> part(static_cast<size_t>(n * H)), want(static_cast<size_t>(n * H));
      vp_embedding_forward(shard.data(), ids.data(), part.data(), n, H, s);
      ops::embedding_forward(table.data(), ids.data(), want.data(), n, H);
      std::vector<float> piece(static_cast<size_t>(n_loc * H));
      sp_reduce_scatter(tp, part.data(), n_loc, H, piece.data());
      expect_close(piece, std::vector<float>(want.begin() + t * n_loc * H, want.begin() + (t + 1) * n_loc * H), 0.0,
                   0.0, "embedding (SP piece)");
      tp.all_reduce(part.data(), n * H);
      expect_close(part, want, 0.0, 0.0, "embedding (all-reduced)");
      // Embedding backward: rows of my shard; padding rows untouched.
      const std::vector<float> dout = randn(n * H, rs, "vp-dout");
      std::vector<float> dshard(static_cast<size_t>(s.rows * H), 0.0f), dtable(static_cast<size_t>(V * H), 0.0f);
      vp_embedding_backward(ids.data(), dout.data(), dshard.data(), n, H, s);
      ops::embedding_backward(ids.data(), dout.data(), dtable.data(), n, H);
      for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t h = 0; h < H; ++h) {
          const float w = r < s.valid() ? dtable[size_t((s.first + r) * H + h)] : 0.0f;
          ASSERT_EQ(dshard[size_t(r * H + h)], w) << "row " << s.first + r;
        }

      // Cross-entropy: logits shard = my columns of the logical logits, padding columns garbage
      // (large, so they would dominate the softmax if they were not excluded).
      const std::vector<float> logits = randn(n * V, rs, "vp-logits", 3.0f);
      std::vector<float> lshard(static_cast<size_t>(n * s.rows), 50.0f);
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < s.valid(); ++c) lshard[size_t(i * s.rows + c)] = logits[size_t(i * V + s.first + c)];
      std::vector<uint8_t> mask(static_cast<size_t>(n), 1);
      mask[3] = mask[7] = 0;
      std::vector<float> loss(static_cast<size_t>(n)), lse(static_cast<size_t>(n)), rloss(static_cast<size_t>(n)), rlse(static_cast<size_t>(n));
      vp_cross_entropy_forward(lshard.data(), target.data(), mask.data(), loss.data(), lse.data(), n, s, tp);
      ops::cross_entropy_forward(logits.data(), target.data(), mask.data(), rloss.data(), rlse.data(), n, V);
      expect_close(loss, rloss, 1e-5, 1e-6, "CE loss");
      for (int64_t i = 0; i < n; ++i) EXPECT_TRUE(std::isfinite(loss[size_t(i)]));
      const std::vector<float> dloss = randn(n, rs, "vp-dloss");
      std::vector<float> dl(static_cast<size_t>(n * s.rows), -1.0f), rdl(static_cast<size_t>(n * V));
      vp_cross_entropy_backward(lshard.data(), target.data(), mask.data(), lse.data(), dloss.data(), dl.data(), n, s);
      ops::cross_entropy_backward(logits.data(), target.data(), mask.data(), rlse.data(), dloss.data(), rdl.data(), n,
                                  V);
      std::vector<float> got, ref;
      for (int64_t i = 0; i < n; ++i)
        for (int64_t c = 0; c < s.rows; ++c) {
          if (c < s.valid()) {
            got.push_back(dl[size_t(i * s.rows + c)]);
            ref.push_back(rdl[size_t(i * V + s.first + c)]);
          } else {
            ASSERT_EQ(dl[size_t(i * s.rows + c)], 0.0f) << "padding column " << s.first + c << " row " << i;
          }
        }
      expect_close(got, ref, 1e-5, 1e-7, "dlogits (valid columns)");
    }
}
