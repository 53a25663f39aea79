#include "train/trainer.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>

#include "core/timer.h"
#include "data/tokenizer.h"
#include "train/checkpoint.h"
#include "train/config_json.h"
#include "train/flops.h"
#include "train/lr_schedule.h"

namespace foldmoe {

Config resolve_config(Config cfg) {
  const int data_vocab = data::CharTokenizer::vocab_size();
  if (cfg.model.vocab == 0) cfg.model.vocab = data_vocab;
  if (cfg.model.vocab < data_vocab)
    user_error("[model] vocab = {} is smaller than the synthetic corpus vocabulary ({} tokens): set vocab >= {} or 0 "
               "(= the data's size)",
               cfg.model.vocab, data_vocab, data_vocab);
  return cfg;
}

Trainer::Trainer(Config cfg, ProcessGroups groups, bool write_outputs)
    : cfg_(std::move(cfg)), groups_(std::move(groups)), write_outputs_(write_outputs) {
  corpus_ = std::make_unique<data::SyntheticCorpus>(uint64_t(cfg_.train.seed), cfg_.data.tasks);
  model_ = std::make_unique<Model>(cfg_, groups_);
  opt_dense_ = std::make_unique<ArenaAdamW>(model_->dense(), cfg_.optim);
  opt_expert_ = std::make_unique<ArenaAdamW>(model_->expert(), cfg_.optim);
  if (!cfg_.checkpoint.load.empty()) load_checkpoint(cfg_.checkpoint.load);
}

double Trainer::peak_flops() {
  if (peak_flops_ == 0) peak_flops_ = measure_peak_flops();
  return peak_flops_;
}

StepMetrics Trainer::train_step() {
  Stopwatch timer;
  const int64_t B = cfg_.train.micro_batch, M = cfg_.train.micro_batches, S = cfg_.train.seq_len;
  const data::Batch batch = corpus_->global_batch(step_, int(B * M), int(S));
  const int n_moe = model_->num_moe_layers();
  const int E = cfg_.moe.num_experts;

  StepMetrics m;
  m.step = step_ + 1;
  m.tokens_per_expert.assign(size_t(n_moe), std::vector<int64_t>(size_t(E), 0));
  std::vector<std::vector<int64_t>> kept(size_t(n_moe), std::vector<int64_t>(size_t(E), 0));
  double lm = 0, aux = 0, z = 0;
  for (int64_t mi = 0; mi < M; ++mi) {
    const MicroBatch mb = make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(), batch.task_ids.data<uint8_t>(), S, mi * B, B);
    MoEStepContext ctx;
    ctx.training = true;
    ctx.step = step_;
    ctx.per_token_loss = cfg_.train.per_token_loss;
    ctx.loss_seed = cfg_.train.per_token_loss ? 1.0 : 1.0 / double(M);
    const MicroBatchResult r = model_->forward_backward(mb, ctx);
    lm += r.ce_sum / double(std::max<int64_t>(r.n_valid, 1)) / double(M);
    for (size_t l = 0; l < r.moe.size(); ++l) {
      const MoEStats& s = r.moe[l];
      aux += (s.aux_loss + s.seq_aux_loss + s.global_aux_loss) / double(M) / n_moe;
      z += s.z_loss / double(M) / n_moe;
      for (int e = 0; e < E; ++e) {
        m.tokens_per_expert[l][size_t(e)] += s.routed_E[size_t(e)];
        kept[l][size_t(e)] += s.kept_E[size_t(e)];
      }
    }
  }
  if (cfg_.train.per_token_loss) {
    int64_t n_glob = 0;
    const uint8_t* mask = batch.loss_mask.data<uint8_t>();
    for (int64_t i = 0; i < batch.loss_mask.numel(); ++i) n_glob += mask[i] != 0;
    const float scale = 1.0f / float(std::max<int64_t>(n_glob, 1));
    for (ParamArena* a : {&model_->dense(), &model_->expert()})
      for (int64_t i = 0; i < a->total(); ++i) a->grads()[i] *= scale;
  }
  model_->finalize_global_batch();
  std::vector<ParamArena*> arenas = {&model_->dense(), &model_->expert()};
  const double norm = grad_norm(arenas);
  // Clipping and zero_grad are folded into the optimizer's single pass over each arena.
  const float clip = float(clip_coefficient(norm, cfg_.optim.grad_clip));
  const double lr = lr_at(cfg_.optim, step_, cfg_.train.steps);
  opt_dense_->step(lr, step_ + 1, clip);
  opt_expert_->step(lr, step_ + 1, clip);
  ++step_;

  m.lm_loss = lm;
  m.aux_loss = aux;
  m.z_loss = z;
  m.grad_norm = norm;
  m.lr = lr;
  m.step_time_s = timer.seconds();
  const double tokens = double(B * M * S);
  m.tokens_per_s = tokens / m.step_time_s;
  m.mfu = peak_flops_ > 0 ? model_flops_per_token(cfg_) * m.tokens_per_s / peak_flops_ : 0.0;
  double imb = 0, routed = 0, kept_total = 0;
  for (int l = 0; l < n_moe; ++l) {
    const auto& c = m.tokens_per_expert[size_t(l)];
    double sum = 0, mx = 0;
    for (int e = 0; e < E; ++e) {
      sum += double(c[size_t(e)]);
      mx = std::max(mx, double(c[size_t(e)]));
      kept_total += double(kept[size_t(l)][size_t(e)]);
    }
    routed += sum;
    imb += sum > 0 ? mx / (sum / E) / n_moe : 0.0;
  }
  m.expert_imbalance = imb;
  m.dropped_fraction = routed > 0 ? 1.0 - kept_total / routed : 0.0;
  return m;
}

void Trainer::run() {
  namespace fs = std::filesystem;
  const fs::path run_dir = cfg_.train.run_dir;
  std::unique_ptr<MetricsWriter> writer;
  if (write_outputs_) {
    fs::create_directories(run_dir);
    std::ofstream(run_dir / "config.toml") << config_to_toml(cfg_);
    // A fresh run starts a fresh metrics file; a resumed run appends to it.
    if (step_ == 0) fs::remove(run_dir / "metrics.jsonl");
    writer = std::make_unique<MetricsWriter>(run_dir.string());
  }
  peak_flops();
  const std::string ckpt_root = cfg_.checkpoint.dir.empty() ? (run_dir / "checkpoints").string() : cfg_.checkpoint.dir;
  ProgressBar bar(cfg_.train.steps, write_outputs_ ? cfg_.log.progress : "off");
  bar.log_line(fmt::format("foldmoe train: steps {}..{}, {} dense + {} expert parameter tensors, run dir {}", step_ + 1,
                           cfg_.train.steps, model_->dense().size(), model_->expert().size(), run_dir.string()));
  while (step_ < cfg_.train.steps) {
    const StepMetrics m = train_step();
    if (writer) writer->write(m);
    if (cfg_.log.interval > 0 && (m.step % cfg_.log.interval == 0 || step_ == cfg_.train.steps))
      bar.log_line(format_step_line(m));
    bar.update(step_);
    if (write_outputs_ && cfg_.checkpoint.interval > 0 && step_ % cfg_.checkpoint.interval == 0 &&
        step_ < cfg_.train.steps)
      save_checkpoint((fs::path(ckpt_root) / fmt::format("step-{:08d}", step_)).string());
  }
  bar.finish();
  if (write_outputs_ && cfg_.checkpoint.save_final) {
    const std::string dir = (fs::path(ckpt_root) / fmt::format("step-{:08d}", step_)).string();
    save_checkpoint(dir);
    std::printf("saved checkpoint %s\n", dir.c_str());
  }
}

}  // namespace foldmoe

namespace foldmoe {
namespace {
// Expert-bias buffers by name, shared with the MoE layers for save and load.
std::map<std::string, std::vector<float>> moe_buffers(Model& model, const Config& cfg) {
  std::map<std::string, std::vector<float>> out;
  std::vector<MoELayer*> layers = model.moe_layers();
  size_t k = 0;
  for (int l = 0; l < cfg.model.layers; ++l) {
    if (!cfg.is_moe_layer(l)) continue;
    MoELayer* m = layers[k++];
    if (!m->expert_bias().empty()) out[fmt::format("layers.{}.moe.router.expert_bias", l)] = m->expert_bias();
  }
  return out;
}
}  // namespace

void Trainer::save_checkpoint(const std::string& dir) {
  train::TrainState st;
  st.step = step_;
  st.dense = &model_->dense();
  st.expert = &model_->expert();
  st.adam_m_dense = &opt_dense_->m();
  st.adam_v_dense = &opt_dense_->v();
  st.adam_m_expert = &opt_expert_->m();
  st.adam_v_expert = &opt_expert_->v();
  st.buffers = moe_buffers(*model_, cfg_);
  st.config_toml = config_to_toml(cfg_);
  st.extra = {{"config", config_to_json(cfg_)}};
  train::save_checkpoint(dir, st);
}

void Trainer::load_checkpoint(const std::string& dir) {
  train::TrainState st;
  st.dense = &model_->dense();
  st.expert = &model_->expert();
  st.adam_m_dense = &opt_dense_->m();
  st.adam_v_dense = &opt_dense_->v();
  st.adam_m_expert = &opt_expert_->m();
  st.adam_v_expert = &opt_expert_->v();
  st.buffers = moe_buffers(*model_, cfg_);
  train::load_checkpoint(dir, st);
  std::vector<MoELayer*> layers = model_->moe_layers();
  size_t k = 0;
  for (int l = 0; l < cfg_.model.layers; ++l) {
    if (!cfg_.is_moe_layer(l)) continue;
    MoELayer* m = layers[k++];
    auto it = st.buffers.find(fmt::format("layers.{}.moe.router.expert_bias", l));
    if (it != st.buffers.end()) m->expert_bias() = it->second;
  }
  step_ = st.step;
  if (step_ > cfg_.train.steps)
    user_error("checkpoint {} is at step {} but [train] steps = {}: raise --train.steps to continue training", dir,
               step_, cfg_.train.steps);
}

}  // namespace foldmoe
