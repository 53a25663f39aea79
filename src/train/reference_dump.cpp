#include "train/reference_dump.h"

#include <cstring>
#include <nlohmann/json.hpp>

#include "core/safetensors.h"
#include "data/data_source.h"
#include "model/model.h"
#include "parallel/grad_sync.h"
#include "train/config_json.h"

namespace foldmoe {
namespace {

Tensor scalar_f64(double v) {
  Tensor t = Tensor::empty({1}, DType::F64);
  t.data<double>()[0] = v;
  return t;
}

Tensor copy_f32(const float* p, const Shape& shape) {
  Tensor t = Tensor::empty(shape, DType::F32);
  if (t.numel()) std::memcpy(t.data<float>(), p, t.nbytes());
  return t;
}

}  // namespace

void dump_reference(const Config& cfg, const std::string& out_path) {
  Model model(cfg, ProcessGroups::single_process());
  const int64_t B = cfg.train.micro_batch, M = cfg.train.micro_batches, S = cfg.train.seq_len;
  const int64_t V = cfg.model.vocab;
  const data::Batch batch = data::make_data_source(cfg, /*with_validation=*/false)->global_batch(0, int(B * M), int(S));

  // A non-trivial expert bias, so the reference checks that it changes selection only.
  for (MoELayer* m : model.moe_layers())
    for (size_t e = 0; e < m->expert_bias().size(); ++e) m->expert_bias()[e] = 0.05f * float(int(e % 3) - 1);

  // Likewise the q/k/v biases (zeros at init) and QK-norm weights (ones): moved, so that the
  // reference checks the forward uses them, not only their gradients.
  ParamArena& dense = model.dense();
  for (int i = 0; i < dense.size(); ++i) {
    const std::string& name = dense.spec(i).name;
    const bool bias = name.ends_with("attn.q_bias") || name.ends_with("attn.k_bias") || name.ends_with("attn.v_bias");
    const bool qk_norm = name.ends_with("attn.q_norm") || name.ends_with("attn.k_norm");
    if (!bias && !qk_norm) continue;
    float* w = dense.params() + dense.offset(i);
    const int64_t n = shape_numel(dense.spec(i).shape);
    for (int64_t j = 0; j < n; ++j)
      w[j] = bias ? 0.2f * float(int((j + i) % 5) - 2) : 1.0f + 0.1f * float(int(j % 7) - 3);
  }

  SafetensorsFile f;
  for (ParamArena* a : {&model.dense(), &model.expert()})
    for (int i = 0; i < a->size(); ++i)
      f.tensors["param/" + a->spec(i).name] = copy_f32(a->params() + a->offset(i), a->spec(i).shape);
  int layer_idx = 0;
  for (int l = 0; l < cfg.model.layers; ++l) {
    if (!cfg.is_moe_layer(l)) continue;
    MoELayer* m = model.moe_layers()[size_t(layer_idx++)];
    if (!m->expert_bias().empty())
      f.tensors["buffer/layers." + std::to_string(l) + ".moe.router.expert_bias"] =
          copy_f32(m->expert_bias().data(), {int64_t(m->expert_bias().size())});
  }
  f.tensors["batch/tokens"] = batch.tokens.clone();
  f.tensors["batch/mask"] = batch.loss_mask.clone();

  // Mean mode: objective = (1/M) Σ_m [CE_mean(m) + Σ_layers Σ_types coeff·L(m)].
  // Per-token mode: objective = (1/n_glob) Σ_m [Σ CE(m) + N_m · Σ_layers Σ_types coeff·L(m)].
  const bool per_token = cfg.train.per_token_loss;
  const int64_t n_glob = std::max<int64_t>(batch.valid_tokens(), 1);
  auto coeff_of = [&](const std::string& type) {
    for (size_t t = 0; t < cfg.moe.load_balancing_type.size(); ++t)
      if (cfg.moe.load_balancing_type[t] == type) return cfg.moe.aux_loss_coeff[t];
    return 0.0;
  };
  double lm = 0, objective = 0, aux = 0, seq_aux = 0, z = 0;
  std::vector<float> logits0;
  for (int64_t m = 0; m < M; ++m) {
    const MicroBatch mb = make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(),
                                           batch.task_ids.data<uint8_t>(), S, m * B, B);
    MoEStepContext ctx;
    ctx.training = true;
    ctx.step = 0;
    ctx.loss_seed = per_token ? 1.0 : 1.0 / double(M);
    ctx.per_token_loss = per_token;
    const MicroBatchResult r = model.forward_backward(mb, ctx, m == 0 ? &logits0 : nullptr);
    double aux_obj = 0;
    for (const MoEStats& s : r.moe) {
      const double w = 1.0 / double(M) / double(r.moe.size());
      aux += s.aux_loss * w;
      seq_aux += s.seq_aux_loss * w;
      z += s.z_loss * w;
      aux_obj += coeff_of("aux_loss") * s.aux_loss + coeff_of("seq_aux_loss") * s.seq_aux_loss +
                 (cfg.moe.z_loss_coeff ? *cfg.moe.z_loss_coeff * s.z_loss : 0.0);
    }
    if (per_token) {
      lm += r.ce_sum / double(n_glob);
      objective += (r.ce_sum + double(mb.N()) * aux_obj) / double(n_glob);
    } else {
      lm += r.ce_sum / double(std::max<int64_t>(r.n_valid, 1)) / double(M);
      objective += (r.ce_sum / double(std::max<int64_t>(r.n_valid, 1)) + aux_obj) / double(M);
    }
  }
  if (per_token)  // docs/dense-parallel.md §7: per-token gradients are scaled by 1/n_glob after accumulation
    for (ParamArena* a : {&model.dense(), &model.expert()}) scale_grads(*a, 1.0f / float(n_glob));

  Tensor l0 = Tensor::empty({B, S, V}, DType::F32);
  float* dst = l0.data<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t s = 0; s < S; ++s) std::memcpy(dst + (b * S + s) * V, logits0.data() + (s * B + b) * V, size_t(V) * 4);
  f.tensors["out/logits0"] = l0;
  for (ParamArena* a : {&model.dense(), &model.expert()})
    for (int i = 0; i < a->size(); ++i)
      f.tensors["grad/" + a->spec(i).name] = copy_f32(a->grads() + a->offset(i), a->spec(i).shape);
  f.tensors["out/lm_loss"] = scalar_f64(lm);
  f.tensors["out/objective"] = scalar_f64(objective);
  f.tensors["out/aux_loss"] = scalar_f64(aux);
  f.tensors["out/seq_aux_loss"] = scalar_f64(seq_aux);
  f.tensors["out/z_loss"] = scalar_f64(z);
  f.metadata["config"] = config_to_json(cfg).dump();
  write_safetensors(out_path, f);
}

}  // namespace foldmoe
