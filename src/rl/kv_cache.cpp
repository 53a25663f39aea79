#include "rl/kv_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "core/check.h"
#include "ops/embedding.h"
#include "ops/linear.h"
#include "ops/matmul_precision.h"
#include "ops/rmsnorm.h"
#include "ops/rope.h"
#include "ops/swiglu.h"
#include "rl/decode_attention.h"

namespace foldmoe::rl {

struct DecoderEngine::LayerParams {
  Param attn_norm, mlp_norm, wq, wk, wv, wo, fc1, fc2;
  Param q_bias, k_bias, v_bias, q_norm, k_norm;  // architecture options (invalid when off)
  int64_t F = 0;
  MoELayer* moe = nullptr;
  std::unique_ptr<MoELayer::Cache> moe_cache;
  int moe_index = -1;
};

struct DecoderEngine::Seq {
  bool live = false;
  int64_t len = 0, cap = 0;
  std::vector<std::vector<float>> k, v;  // per layer [G, cap, D]: each KV head's rows contiguous
};

namespace {
Param lookup(ParamArena& arena, const std::string& name) {
  const int i = arena.find(name);
  FOLDMOE_CHECK(i >= 0, "decoder engine: parameter {} not found", name);
  return Param{&arena, i};
}
// y[r, :] += b for every row.
void add_bias(float* y, const float* b, int64_t R, int64_t W) {
  for (int64_t r = 0; r < R; ++r)
    for (int64_t j = 0; j < W; ++j) y[r * W + j] += b[j];
}
}  // namespace

DecoderEngine::DecoderEngine(Model& model) {
  const Config& cfg = model.config();
  H_ = cfg.model.hidden, V_ = cfg.model.vocab, A_ = cfg.model.heads, G_ = cfg.model.kv_heads, D_ = cfg.head_dim();
  eps_ = cfg.model.norm_eps;
  qk_norm_ = cfg.model.qk_norm;
  precision_ = ops::parse_precision(cfg.train.precision);
  rope_ = ops::rope_table(cfg.model, D_);
  K_ = cfg.moe.topk;
  ParamArena& d = model.dense();
  embedding_ = lookup(d, "embedding.weight");
  final_norm_ = lookup(d, "final_norm.weight");
  head_ = cfg.model.tie_embeddings ? embedding_ : lookup(d, "lm_head.weight");
  std::vector<MoELayer*> moes = model.moe_layers();
  Lm_ = int(moes.size());
  int j = 0;
  layers_.resize(size_t(cfg.model.layers));
  for (int i = 0; i < cfg.model.layers; ++i) {
    LayerParams& L = layers_[size_t(i)];
    const std::string p = fmt::format("layers.{}.", i);
    L.attn_norm = lookup(d, p + "attn_norm.weight");
    L.mlp_norm = lookup(d, p + "mlp_norm.weight");
    L.wq = lookup(d, p + "attn.wq");
    L.wk = lookup(d, p + "attn.wk");
    L.wv = lookup(d, p + "attn.wv");
    L.wo = lookup(d, p + "attn.wo");
    if (cfg.model.attention_bias) {
      L.q_bias = lookup(d, p + "attn.q_bias");
      L.k_bias = lookup(d, p + "attn.k_bias");
      L.v_bias = lookup(d, p + "attn.v_bias");
    }
    if (qk_norm_ != "none") {
      L.q_norm = lookup(d, p + "attn.q_norm");
      L.k_norm = lookup(d, p + "attn.k_norm");
    }
    if (cfg.is_moe_layer(i)) {
      L.moe = moes[size_t(j)];
      L.moe_cache = L.moe->make_cache();
      L.moe_index = j++;
    } else {
      L.fc1 = lookup(d, p + "mlp.fc1");
      L.fc2 = lookup(d, p + "mlp.fc2");
      L.F = L.fc2.spec().shape.back();
    }
  }
  FOLDMOE_CHECK(j == Lm_, "decoder engine: {} MoE layers in the config, {} in the model", j, Lm_);
}

DecoderEngine::~DecoderEngine() = default;

int DecoderEngine::new_sequence(int64_t capacity_hint) {
  int slot;
  if (!free_.empty()) {
    slot = free_.back();
    free_.pop_back();
  } else {
    slot = int(seqs_.size());
    seqs_.emplace_back();
  }
  Seq& s = seqs_[size_t(slot)];
  s.live = true;
  s.len = 0;
  s.cap = std::max<int64_t>(capacity_hint, 16);
  s.k.resize(layers_.size());
  s.v.resize(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l) {
    s.k[l].resize(size_t(s.cap * G_ * D_));
    s.v[l].resize(size_t(s.cap * G_ * D_));
  }
  return slot;
}

int DecoderEngine::fork_sequence(int src) {
  FOLDMOE_CHECK(src >= 0 && src < int(seqs_.size()) && seqs_[size_t(src)].live, "fork of a dead slot {}", src);
  const int slot = new_sequence(seqs_[size_t(src)].cap);
  Seq& d = seqs_[size_t(slot)];
  const Seq& s = seqs_[size_t(src)];  // after new_sequence: seqs_ may have grown
  d.len = s.len;
  d.cap = s.cap;
  for (size_t l = 0; l < layers_.size(); ++l) {
    d.k[l] = s.k[l];
    d.v[l] = s.v[l];
  }
  return slot;
}

void DecoderEngine::free_sequence(int slot) {
  FOLDMOE_CHECK(slot >= 0 && slot < int(seqs_.size()) && seqs_[size_t(slot)].live, "free of a dead slot {}", slot);
  Seq& s = seqs_[size_t(slot)];
  s.live = false;
  s.len = 0;
  free_.push_back(slot);
}

int64_t DecoderEngine::length(int slot) const { return seqs_[size_t(slot)].len; }

void DecoderEngine::extend(std::span<const Feed> feeds, std::vector<float>& logits, bool all_logits,
                           std::vector<int32_t>* routing) {
  // The run's matrix-product precision (docs/precision.md), decode attention included.
  const ops::MatmulPrecisionScope precision(precision_);
  // Rows: every fed token, feed by feed.
  std::vector<int32_t> ids, pos, slot_of;
  std::vector<int64_t> last_row;
  for (const Feed& f : feeds) {
    FOLDMOE_CHECK(f.slot >= 0 && f.slot < int(seqs_.size()) && seqs_[size_t(f.slot)].live, "extend of a dead slot {}",
                  f.slot);
    FOLDMOE_CHECK(!f.tokens.empty(), "extend: empty feed for slot {}", f.slot);
    Seq& s = seqs_[size_t(f.slot)];
    for (size_t t = 0; t < f.tokens.size(); ++t) {
      const int32_t id = f.tokens[t];
      if (id < 0 || id >= V_) user_error("token id {} is outside the vocabulary [0, {})", id, V_);
      ids.push_back(id);
      pos.push_back(int32_t(s.len + int64_t(t)));
      slot_of.push_back(f.slot);
    }
    last_row.push_back(int64_t(ids.size()) - 1);
    // Grow the cache to hold the new positions (each KV head's rows move to the new stride).
    const int64_t need = s.len + int64_t(f.tokens.size());
    if (need > s.cap) {
      const int64_t cap = std::max(need, 2 * s.cap);
      for (size_t l = 0; l < layers_.size(); ++l)
        for (std::vector<float>* c : {&s.k[l], &s.v[l]}) {
          std::vector<float> grown(size_t(cap * G_ * D_));
          for (int64_t g = 0; g < G_; ++g)
            std::memcpy(grown.data() + g * cap * D_, c->data() + g * s.cap * D_, size_t(s.len * D_) * sizeof(float));
          c->swap(grown);
        }
      s.cap = cap;
    }
  }
  for (size_t a = 0; a < feeds.size(); ++a)
    for (size_t b = a + 1; b < feeds.size(); ++b)
      FOLDMOE_CHECK(feeds[a].slot != feeds[b].slot, "extend: slot {} fed twice in one call", feeds[a].slot);
  const int64_t R = int64_t(ids.size());
  if (routing) routing->assign(size_t(R * Lm_ * K_), -1);

  const int64_t H = H_, AD = A_ * D_, GD = G_ * D_;
  std::vector<float> x(size_t(R * H)), normed(size_t(R * H)), branch(size_t(R * H)), rstd(static_cast<size_t>(R));
  std::vector<float> q(size_t(R * AD)), k(size_t(R * GD)), v(size_t(R * GD)), o(size_t(R * AD)), scores;
  std::vector<float> qk_in, qk_rstd;
  ops::embedding_forward(embedding_.w(), ids.data(), x.data(), R, H);
  const float scale = 1.0f / std::sqrt(float(D_));

  for (size_t li = 0; li < layers_.size(); ++li) {
    LayerParams& L = layers_[li];
    // Attention.
    ops::rmsnorm_forward(x.data(), L.attn_norm.w(), normed.data(), rstd.data(), R, H, eps_);
    ops::linear_forward(normed.data(), L.wq.w(), q.data(), R, H, AD);
    ops::linear_forward(normed.data(), L.wk.w(), k.data(), R, H, GD);
    ops::linear_forward(normed.data(), L.wv.w(), v.data(), R, H, GD);
    if (L.q_bias.valid()) {
      add_bias(q.data(), L.q_bias.w(), R, AD);
      add_bias(k.data(), L.k_bias.w(), R, GD);
      add_bias(v.data(), L.v_bias.w(), R, GD);
    }
    if (L.q_norm.valid()) {
      // "head": each head's D values; "full": the whole projection (as QkNorm in the training forward).
      const bool per_head = qk_norm_ == "head";
      qk_in.assign(q.begin(), q.end());
      qk_rstd.resize(size_t(per_head ? R * A_ : R));
      ops::rmsnorm_forward(qk_in.data(), L.q_norm.w(), q.data(), qk_rstd.data(), per_head ? R * A_ : R,
                           per_head ? D_ : AD, eps_);
      qk_in.assign(k.begin(), k.end());
      qk_rstd.resize(size_t(per_head ? R * G_ : R));
      ops::rmsnorm_forward(qk_in.data(), L.k_norm.w(), k.data(), qk_rstd.data(), per_head ? R * G_ : R,
                           per_head ? D_ : GD, eps_);
    }
    ops::rope_forward(q.data(), pos.data(), R, A_, D_, rope_);
    ops::rope_forward(k.data(), pos.data(), R, G_, D_, rope_);
    for (int64_t r = 0; r < R; ++r) {
      Seq& s = seqs_[size_t(slot_of[size_t(r)])];
      for (int64_t g = 0; g < G_; ++g) {
        const int64_t at = (g * s.cap + pos[size_t(r)]) * D_;
        std::memcpy(s.k[li].data() + at, k.data() + r * GD + g * D_, size_t(D_) * sizeof(float));
        std::memcpy(s.v[li].data() + at, v.data() + r * GD + g * D_, size_t(D_) * sizeof(float));
      }
    }
    for (int64_t r = 0; r < R; ++r) {
      const Seq& s = seqs_[size_t(slot_of[size_t(r)])];
      attend_cached(q.data() + r * AD, s.k[li].data(), s.v[li].data(), pos[size_t(r)] + 1, A_, G_, D_, s.cap * D_,
                    scale, o.data() + r * AD, scores);  // causal: keys 0..pos
    }
    ops::linear_forward(o.data(), L.wo.w(), branch.data(), R, AD, H);
    for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];
    // MLP.
    ops::rmsnorm_forward(x.data(), L.mlp_norm.w(), normed.data(), rstd.data(), R, H, eps_);
    if (L.moe) {
      MoEStepContext ctx;
      ctx.training = false;
      ctx.S_loc = R;
      ctx.B = 1;
      ctx.S_full = R;
      ctx.positions_N = pos.data();
      if (routing) {
        ctx.record_experts_NK = routing->data() + int64_t(L.moe_index) * K_;
        ctx.replay_stride = int64_t(Lm_) * K_;
      }
      L.moe->forward(normed.data(), branch.data(), R, ctx, *L.moe_cache, nullptr);
    } else {
      std::vector<float> ab(size_t(R * 2 * L.F)), hF(size_t(R * L.F));
      ops::linear_forward(normed.data(), L.fc1.w(), ab.data(), R, H, 2 * L.F);
      ops::swiglu_forward(ab.data(), hF.data(), R, L.F);
      ops::linear_forward(hF.data(), L.fc2.w(), branch.data(), R, L.F, H);
    }
    for (size_t i = 0; i < x.size(); ++i) x[i] += branch[i];
  }
  for (const Feed& f : feeds) seqs_[size_t(f.slot)].len += int64_t(f.tokens.size());

  // Final norm and head on the rows whose logits are wanted.
  const int64_t Rout = all_logits ? R : int64_t(feeds.size());
  std::vector<float> xo(size_t(Rout * H));
  if (all_logits) {
    xo = x;
  } else {
    for (int64_t i = 0; i < Rout; ++i)
      std::memcpy(xo.data() + i * H, x.data() + last_row[size_t(i)] * H, size_t(H) * sizeof(float));
  }
  std::vector<float> xn(size_t(Rout * H)), rs(static_cast<size_t>(Rout));
  ops::rmsnorm_forward(xo.data(), final_norm_.w(), xn.data(), rs.data(), Rout, H, eps_);
  logits.resize(size_t(Rout * V_));
  ops::linear_forward(xn.data(), head_.w(), logits.data(), Rout, H, V_);
}

}  // namespace foldmoe::rl
