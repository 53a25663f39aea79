#include "train/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include "config/problems.h"
#include "config/toml_writer.h"
#include "core/fault_inject.h"
#include "core/timer.h"
#include "core/trace.h"
#include "data/synthetic.h"
#include "parallel/grad_sync.h"
#include "train/checkpoint.h"
#include "train/config_json.h"
#include "train/flops.h"
#include "train/logical_checkpoint.h"
#include "train/lr_schedule.h"
#include "train/run_loop.h"

namespace foldmoe {

namespace {

// [model] vocab against what the model must embed: every tokenizer id and every id in the data.
Config resolve_vocab(Config cfg, const data::Tokenizer& tok, int32_t max_token_id) {
  const int32_t tv = tok.vocab_size();
  const int32_t need = std::max(tv, max_token_id + 1);
  if (cfg.model.vocab == 0) cfg.model.vocab = need;
  Problems p;
  if (cfg.model.vocab < tv)
    p.add("D21",
          fmt::format("[model] vocab = {} is smaller than the {} ids of the data's tokenizer ({}).", cfg.model.vocab,
                      tv, tok.describe()),
          fmt::format("set [model] vocab >= {}, or 0 (= the data's size).", need));
  else if (cfg.model.vocab <= max_token_id)
    p.add("D21",
          fmt::format("[model] vocab = {} but the data holds token id {} (tokenizer {}).", cfg.model.vocab,
                      max_token_id, tok.describe()),
          fmt::format("set [model] vocab >= {}, or 0 (= the data's size); check that [data] tokenizer is the one "
                      "the data was made with.",
                      need));
  p.raise();
  return cfg;
}

}  // namespace

Config resolve_config(Config cfg) {
  const std::unique_ptr<data::DataSource> source = data::make_data_source(cfg, data::validation_enabled(cfg));
  return resolve_config(std::move(cfg), *source);
}

Config resolve_config(Config cfg, const data::DataSource& source) {
  return resolve_vocab(std::move(cfg), source.tokenizer(), source.max_token_id());
}

Config resolve_config_for_tokenizer(Config cfg, const data::Tokenizer& tokenizer) {
  return resolve_vocab(std::move(cfg), tokenizer, tokenizer.vocab_size() - 1);
}

const data::DataSource& Trainer::data() {
  if (!data_) data_ = data::make_data_source(cfg_, data::validation_enabled(cfg_));
  return *data_;
}

Trainer::Trainer(Config cfg, ProcessGroups groups, bool write_outputs)
    : cfg_(std::move(cfg)),
      groups_(std::move(groups)),
      write_outputs_(write_outputs),
      nonfinite_(cfg_.train.skip_nonfinite_steps) {
  model_ = std::make_unique<Model>(cfg_, groups_);
  if (cfg_.parallel.distributed_optimizer) {
    zero_dense_ = std::make_unique<ShardedAdamW>(model_->dense(), cfg_.optim, groups_.dp_cp, cfg_.parallel.bucket_size);
    zero_expert_ = std::make_unique<ShardedAdamW>(model_->expert(), cfg_.optim, groups_.edp, cfg_.parallel.bucket_size);
  } else {
    opt_dense_ = std::make_unique<ArenaAdamW>(model_->dense(), cfg_.optim);
    opt_expert_ = std::make_unique<ArenaAdamW>(model_->expert(), cfg_.optim);
  }
  if (!cfg_.checkpoint.load.empty()) load_checkpoint(cfg_.checkpoint.load);
}

double Trainer::peak_flops() {
  if (peak_flops_ == 0) peak_flops_ = measure_peak_flops(ops::parse_precision(cfg_.train.precision));
  return peak_flops_;
}

namespace {
// Collective over the world: the lowest rank whose `local` name is non-empty, and that name, on
// every rank (one all-reduce, one broadcast); nullopt when no rank has one.
std::optional<std::pair<int, std::string>> lowest_rank_naming(Communicator& world, const std::string& local) {
  double found = local.empty() ? 0 : double(world.size() - world.rank());
  world.all_reduce(&found, 1, ReduceOp::Max);
  if (found == 0) return std::nullopt;
  const int owner = world.size() - int(found);
  std::array<char, 256> name{};
  std::snprintf(name.data(), name.size(), "%s", local.c_str());
  world.broadcast_bytes(name.data(), int64_t(name.size()), owner);
  return std::make_pair(owner, std::string(name.data()));
}
}  // namespace

// Finalize (docs/dense-parallel.md §10) and optimizer step; returns the global grad norm before clipping.
bool Trainer::skip_nonfinite_step(double norm, double local_loss) {
  if (nonfinite_.allow_skip()) return true;
  // Every rank sees the same (all-reduced) norm and gets here, so they can find together which
  // rank holds a non-finite gradient (the lowest such rank) and hand its parameter name to all.
  std::string local = train::first_nonfinite_gradient(model_->dense());
  if (local.empty()) local = train::first_nonfinite_gradient(model_->expert());
  std::string where = "in no gradient element (the squared norm overflowed)";
  if (const auto found = lowest_rank_naming(*groups_.world, local))
    where = fmt::format("first in the gradient of {} (on rank {})", found->second, found->first);
  const std::string skips =
      nonfinite_.allowed() == 0
          ? std::string("train.skip_nonfinite_steps = 0")
          : fmt::format("more than train.skip_nonfinite_steps = {} non-finite steps in a row", nonfinite_.allowed());
  user_error(
      "training error C1: step {} has a non-finite gradient norm ({}; loss {}), {}; {}: the run stops without "
      "an update and without saving a checkpoint\n  fix: lower optim.lr or raise optim.warmup_steps, keep "
      "optim.grad_clip on, resume from the last checkpoint (--checkpoint.load=auto), or allow skips with "
      "--train.skip_nonfinite_steps=N",
      step_ + 1, norm, local_loss, where, skips);
}

// Rule C1 for the weights: after an update every rank checks its own parameters; the lowest rank
// holding a non-finite one names it to all (they agree through one all-reduce).
void Trainer::check_parameters_finite() {
  std::string local = train::first_nonfinite_parameter(model_->dense());
  if (local.empty()) local = train::first_nonfinite_parameter(model_->expert());
  const auto found = lowest_rank_naming(*groups_.world, local);
  if (!found) return;
  user_error(
      "training error C1: step {} left a non-finite value in the weights of {} (on rank {}) although every gradient "
      "was finite: the update overflowed; the run stops without saving a checkpoint\n  fix: lower optim.lr (or "
      "optim.weight_decay), keep optim.grad_clip on, and resume from the last checkpoint (--checkpoint.load=auto)",
      step_ + 1, found->second, found->first);
}

// The guard between the gradient norm and the update, the same for both optimizers: a skipped
// step drops its gradients; a finite one resets the run of skips.
bool Trainer::skipped_nonfinite(double norm, double local_loss) {
  last_step_skipped_ = !std::isfinite(norm) && skip_nonfinite_step(norm, local_loss);
  if (last_step_skipped_) {
    model_->dense().zero_grad();
    model_->expert().zero_grad();
    return true;
  }
  nonfinite_.finite_step();
  return false;
}

double Trainer::finalize_and_step(int64_t n_glob, double local_loss) {
  ParamArena& dense = model_->dense();
  ParamArena& expert = model_->expert();
  const bool per_token = cfg_.train.per_token_loss;
  const int dp_cp = groups_.dp_cp->size();
  const double lr = lr_at(cfg_.optim, step_, cfg_.train.steps);
  const float token_scale = 1.0f / float(std::max<int64_t>(n_glob, 1));
  double norm = 0;
  model_->reduce_tied_embedding_grads();
  if (zero_dense_) {
    if (!per_token && dp_cp > 1) {
      scale_grads(dense, 1.0f / float(dp_cp));
      scale_grads(expert, 1.0f / float(dp_cp));
    }
    zero_dense_->reduce_scatter_grads();
    zero_expert_->reduce_scatter_grads();
    zero_dense_->reduce_sequence_parallel(*groups_.tp);
    model_->finalize_global_batch();
    if (per_token) {
      zero_dense_->scale_shard_grads(token_scale);
      zero_expert_->scale_shard_grads(token_scale);
    }
    double sq = zero_dense_->shard_square_norm(groups_.tp->rank() == 0) + zero_expert_->shard_square_norm(true);
    groups_.world->all_reduce(&sq, 1);
    norm = std::sqrt(sq);
    if (skipped_nonfinite(norm, local_loss)) return norm;
    if (cfg_.optim.grad_clip > 0 && cfg_.optim.grad_clip / (norm + 1e-6) < 1.0) {
      const float coef = float(cfg_.optim.grad_clip / (norm + 1e-6));
      zero_dense_->scale_shard_grads(coef);
      zero_expert_->scale_shard_grads(coef);
    }
    zero_dense_->step(lr, step_ + 1);
    zero_expert_->step(lr, step_ + 1);
  } else {
    reduce_gradients(dense, expert, groups_, per_token, cfg_.parallel.bucket_size);
    model_->finalize_global_batch();
    if (per_token) {
      scale_grads(dense, token_scale);
      scale_grads(expert, token_scale);
    }
    const auto [d, e] = grad_square_norms(dense, expert, groups_);
    norm = std::sqrt(d + e);
    if (skipped_nonfinite(norm, local_loss)) return norm;
    // Clipping and zero_grad are folded into the optimizer's single pass over each arena.
    const float clip = float(clip_coefficient(norm, cfg_.optim.grad_clip));
    opt_dense_->step(lr, step_ + 1, clip);
    opt_expert_->step(lr, step_ + 1, clip);
    return norm;
  }
  dense.zero_grad();
  expert.zero_grad();
  return norm;
}

StepMetrics Trainer::train_step() {
  Stopwatch timer;
  groups_.reset_comm_stats();
  const int DP = groups_.dp->size(), d = groups_.dp->rank();
  const int64_t B = cfg_.train.micro_batch, M = cfg_.micro_batches_per_replica(DP), S = cfg_.train.seq_len;
  // The global batch does not depend on the layout; replica d reads global micro-batches
  // j = m·DP + d (docs/dense-parallel.md §5).
  inject_fault("data", step_ + 1);
  std::optional<trace::PhaseScope> data_time(std::in_place, trace::Phase::Data);
  const data::Batch batch = data().global_batch(step_, int(B * M * DP), int(S));
  const int n_moe = model_->num_moe_layers();
  const int E = cfg_.moe.num_experts;

  StepMetrics m;
  m.step = step_ + 1;
  m.tokens_per_expert.assign(size_t(n_moe), std::vector<int64_t>(size_t(E), 0));
  std::vector<std::vector<int64_t>> kept(size_t(n_moe), std::vector<int64_t>(size_t(E), 0));
  std::vector<double> task_counts(size_t(n_moe) * data::kNumTasks * size_t(E), 0.0);
  double lm = 0, aux = 0, z = 0;
  const int64_t n_glob = batch.valid_tokens();
  // Every micro-batch of the step, built up front: pipeline stages run them interleaved, and a
  // chunk's backward reads the micro-batch its forward saw.
  std::vector<MicroBatch> mbs;
  std::vector<MoEStepContext> ctxs;
  for (int64_t mi = 0; mi < M; ++mi) {
    const int64_t j = mi * DP + d;
    // CP rank c keeps its zig-zag chunks of every sequence (docs/dense-parallel.md §4.1, §5).
    mbs.push_back(cp_split(make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(),
                                            batch.task_ids.data<uint8_t>(), S, j * B, B),
                           groups_.cp->size(), groups_.cp->rank()));
  }
  data_time.reset();
  for (int64_t mi = 0; mi < M; ++mi) {
    MoEStepContext ctx;
    ctx.training = true;
    ctx.step = step_;
    ctx.per_token_loss = cfg_.train.per_token_loss;
    ctx.loss_seed = cfg_.train.per_token_loss ? 1.0 : double(groups_.cp->size()) / double(M);
    ctx.dp_size = DP;
    ctx.tag_N = mbs[size_t(mi)].task_N.data();
    ctx.num_tags = data::kNumTasks;
    ctxs.push_back(ctx);
  }
  const auto on_forward = [&](const ChunkResult& r) {
    // r.n_valid is n_mb (all CP ranks); the CP pieces are summed below.
    if (r.has_loss)
      lm += cfg_.train.per_token_loss ? r.ce_sum : r.ce_sum / double(std::max<int64_t>(r.n_valid, 1)) / double(M);
    for (const auto& [l, s] : r.moe) {
      aux += (s.aux_loss + s.seq_aux_loss + s.global_aux_loss) / double(M) / n_moe;
      z += s.z_loss / double(M) / n_moe;
      for (int e = 0; e < E; ++e) {
        m.tokens_per_expert[size_t(l)][size_t(e)] += s.routed_E[size_t(e)];
        kept[size_t(l)][size_t(e)] += s.kept_E[size_t(e)];
      }
      for (size_t t = 0; t < s.routed_tag_E.size(); ++t)
        task_counts[size_t(l) * data::kNumTasks * size_t(E) + t] += double(s.routed_tag_E[t]);
    }
  };
  // This stage's schedule; one stage runs F0 B0 F1 B1 ... (docs/pipeline.md §6).
  model_->run_pipeline(mbs, ctxs, on_forward);
  const double norm = [&] {
    const trace::PhaseScope timed(trace::Phase::Optimizer);
    return finalize_and_step(n_glob, lm);
  }();
  if (!last_step_skipped_) check_parameters_finite();
  ++step_;
  if (groups_.world->size() > 1) {  // this step's traffic, before the metric reductions below
    const CommStats cs = groups_.comm_stats();
    for (int k = 0; k < CommStats::kNumKinds; ++k)
      if (cs.calls[size_t(k)] > 0) m.comm_bytes[CommStats::kind_name(k)] = cs.bytes[size_t(k)];
    m.comm_seconds = cs.seconds;
  }

  // Metrics: losses averaged over DP replicas (the lm pieces of the CP ranks summed first; aux and
  // z are already reduced over tp_cp; each pipeline stage holds the pieces of its own layers, the
  // last one the lm loss); expert counts summed over the world (each stage fills its layers' rows).
  if (groups_.cp->size() > 1) groups_.cp->all_reduce(&lm, 1);
  double losses[3] = {lm, aux, z};
  if (groups_.pp->size() > 1) groups_.pp->all_reduce(losses, 3);
  groups_.dp->all_reduce(losses, 3);
  m.lm_loss = cfg_.train.per_token_loss ? losses[0] / double(std::max<int64_t>(n_glob, 1)) : losses[0] / DP;
  m.aux_loss = losses[1] / DP;
  m.z_loss = losses[2] / DP;
  std::vector<double> counts;
  for (int l = 0; l < n_moe; ++l)
    for (int e = 0; e < E; ++e) counts.push_back(double(m.tokens_per_expert[size_t(l)][size_t(e)]));
  for (int l = 0; l < n_moe; ++l)
    for (int e = 0; e < E; ++e) counts.push_back(double(kept[size_t(l)][size_t(e)]));
  counts.insert(counts.end(), task_counts.begin(), task_counts.end());
  if (!counts.empty()) groups_.world->all_reduce(counts.data(), int64_t(counts.size()));
  size_t k = 0;
  for (int l = 0; l < n_moe; ++l)
    for (int e = 0; e < E; ++e) m.tokens_per_expert[size_t(l)][size_t(e)] = int64_t(counts[k++]);
  for (int l = 0; l < n_moe; ++l)
    for (int e = 0; e < E; ++e) kept[size_t(l)][size_t(e)] = int64_t(counts[k++]);
  for (int l = 0; l < n_moe; ++l)
    for (int t = 0; t < data::kNumTasks; ++t) {
      auto& per_layer = m.task_tokens_per_expert[data::task_name(data::Task(t))];
      per_layer.resize(size_t(n_moe), std::vector<int64_t>(size_t(E), 0));
      for (int e = 0; e < E; ++e) per_layer[size_t(l)][size_t(e)] = int64_t(counts[k++]);
    }

  if (!data().synthetic()) m.task_tokens_per_expert.clear();  // no task labels on real text
  m.grad_norm = norm;
  m.lr = lr_at(cfg_.optim, step_ - 1, cfg_.train.steps);
  m.step_time_s = timer.seconds();
  const double tokens = double(B * M * S * DP);
  m.tokens_per_s = tokens / m.step_time_s;
  m.mfu = peak_flops_ > 0 ? model_flops_per_token(cfg_) * m.tokens_per_s / (peak_flops_ * groups_.world->size()) : 0.0;
  double routed = 0, kept_total = 0;
  for (int l = 0; l < n_moe; ++l)
    for (int e = 0; e < E; ++e) {
      routed += double(m.tokens_per_expert[size_t(l)][size_t(e)]);
      kept_total += double(kept[size_t(l)][size_t(e)]);
    }
  m.expert_imbalance = expert_imbalance(m.tokens_per_expert);
  m.dropped_fraction = routed > 0 ? 1.0 - kept_total / routed : 0.0;
  return m;
}

Trainer::Validation Trainer::validate() {
  const int DP = groups_.dp->size(), d = groups_.dp->rank();
  const int64_t B = cfg_.train.micro_batch, M = cfg_.micro_batches_per_replica(DP), S = cfg_.train.seq_len;
  double ce = 0;
  Validation v;
  for (int i = 0; i < cfg_.eval.iters; ++i) {
    // The same global batch shape as training, sliced the same way over the layout.
    const data::Batch batch = data().validation_batch(i, int(B * M * DP), int(S));
    v.tokens += batch.valid_tokens();
    std::vector<MicroBatch> mbs;
    std::vector<MoEStepContext> ctxs;
    for (int64_t mi = 0; mi < M; ++mi) {
      const int64_t j = mi * DP + d;
      mbs.push_back(cp_split(make_micro_batch(batch.tokens.data<int32_t>(), batch.loss_mask.data<uint8_t>(),
                                              batch.task_ids.data<uint8_t>(), S, j * B, B),
                             groups_.cp->size(), groups_.cp->rank()));
    }
    for (int64_t mi = 0; mi < M; ++mi) {
      MoEStepContext ctx;
      ctx.training = false;  // no aux-loss gradients, expert-bias counts or jitter
      ctx.step = step_;
      ctx.dp_size = DP;
      ctxs.push_back(ctx);
    }
    model_->run_pipeline_forward(mbs, ctxs, [&](const ChunkResult& r) {
      if (r.has_loss) ce += r.ce_sum;  // this rank's positions; CP pieces, stages and replicas are summed below
    });
  }
  // Like the training loss: the CP pieces and the last stage's sums over pp, then the replicas (TP
  // ranks hold identical sums and are not added).
  if (groups_.cp->size() > 1) groups_.cp->all_reduce(&ce, 1);
  if (groups_.pp->size() > 1) groups_.pp->all_reduce(&ce, 1);
  groups_.dp->all_reduce(&ce, 1);
  v.loss = ce / double(std::max<int64_t>(v.tokens, 1));
  return v;
}

nlohmann::json Trainer::data_state() {
  const int64_t gbs = cfg_.train.micro_batch * cfg_.micro_batches_per_replica(groups_.dp->size()) * groups_.dp->size();
  return {{"fingerprint", data_fingerprint()}, {"step", step_}, {"consumed_samples", step_ * gbs}};
}

std::string Trainer::data_fingerprint() {
  return fmt::format("{} seq_len={}", data().fingerprint(), cfg_.train.seq_len);
}

void Trainer::check_resumed_data() {
  if (!resumed_data_.is_object() || !resumed_data_.contains("fingerprint")) return;
  const std::string was = resumed_data_.at("fingerprint").get<std::string>();
  const std::string now = data_fingerprint();
  if (was == now || cfg_.data.allow_different_data) return;
  Problems p;
  p.add("D24",
        fmt::format("checkpoint {} was trained on other data: it recorded\n    {}\n  and [data] now gives\n    {}",
                    cfg_.checkpoint.load, was, now),
        "resume with the checkpoint's [data] settings and [train] seed / seq_len, or set "
        "--data.allow_different_data=true to continue on the new data on purpose.");
  p.raise();
}

void Trainer::run(const RunDirectory& dir) {
  const bool lead = groups_.world->rank() == 0;  // only world rank 0 prints and writes files
  // The data (files, split, vocabulary) and a resumed checkpoint's data are checked before the run
  // directory is written.
  check_resumed_data();
  peak_flops();
  const int DP = groups_.dp->size();
  const int64_t tokens_per_step = cfg_.train.micro_batch * cfg_.micro_batches_per_replica(DP) * cfg_.train.seq_len * DP;
  RunSchedule schedule = base_run_schedule(cfg_, "train", cfg_.train.steps, cfg_.checkpoint.interval, write_outputs_,
                                           groups_.world->size());
  RunHooks hooks;
  hooks.step = [&] {
    const StepMetrics m = train_step();
    StepOutcome o{step_metrics_json(m), format_step_line(m), m.lm_loss, tokens_per_step, last_step_skipped_};
    if (cfg_.train.skip_nonfinite_steps > 0) o.record["nonfinite_skipped_steps"] = nonfinite_.skipped();
    if (o.skipped) o.line += " | skipped: non-finite";
    return o;
  };
  hooks.save = [&](const std::string& path, train::AsyncCheckpointWriter* async) { save_checkpoint(path, async); };
  hooks.world = groups_.world.get();
  if (data::validation_enabled(cfg_)) {
    schedule.eval_every = cfg_.eval.interval;
    schedule.eval_at_end = cfg_.eval.at_end;
    hooks.evaluate = [&]() -> std::optional<EvalOutcome> {
      const Validation v = validate();
      const double ppl = std::exp(v.loss);
      nlohmann::ordered_json j;
      j["step"] = step_;
      j["valid_loss"] = v.loss;
      j["valid_ppl"] = ppl;
      j["valid_tokens"] = v.tokens;
      return EvalOutcome{
          j, fmt::format("step {:5d} | valid loss {:.3f} ppl {:.2f} ({} tokens)", step_, v.loss, ppl, v.tokens)};
    };
  }
  hooks.world_max = [&](double v) {
    groups_.world->all_reduce(&v, 1, ReduceOp::Max);
    return v;
  };
  const int64_t dense = arena_parameter_count(model_->dense()), expert = arena_parameter_count(model_->expert());
  const std::string start = fmt::format(
      "foldmoe train: steps {}..{} on {} rank(s), model {} parameters ({}), this rank {} ({} dense + {} "
      "expert), run dir {}\ndata: {}",
      step_ + 1, cfg_.train.steps, groups_.world->size(), model_parameter_count(cfg_),
      format_count(model_parameter_count(cfg_)), dense + expert, dense, expert, dir.plan().run_dir.string(),
      data().describe());
  run_loop(dir, config_to_toml(cfg_), step_, schedule, hooks, lead && write_outputs_, start);
}

}  // namespace foldmoe

namespace foldmoe {

// Checkpoints are logical (train/logical_checkpoint.h): written by world rank 0 from every rank's
// shards, loadable under any layout.
void Trainer::save_checkpoint(const std::string& dir, train::AsyncCheckpointWriter* async) {
  LocalMoments mom;
  if (zero_dense_) {
    mom = {zero_dense_->full_m(), zero_dense_->full_v(), zero_expert_->full_m(), zero_expert_->full_v()};
  } else {
    mom = {opt_dense_->m(), opt_dense_->v(), opt_expert_->m(), opt_expert_->v()};
  }
  save_logical_checkpoint(
      dir, *model_, groups_, &mom, step_, config_to_toml(cfg_),
      {{"config", config_to_json(cfg_)}, {"world_size", groups_.world->size()}, {"data", data_state()}}, async);
}

void Trainer::load_checkpoint(const std::string& dir) {
  LocalMoments mom;
  const LoadedCheckpoint loaded = load_logical_checkpoint(dir, *model_, groups_, &mom);
  step_ = loaded.step;
  resumed_data_ =
      loaded.extra.is_object() && loaded.extra.contains("data") ? loaded.extra.at("data") : nlohmann::json();
  if (zero_dense_) {
    zero_dense_->load_full_moments(mom.m_dense, mom.v_dense);
    zero_expert_->load_full_moments(mom.m_expert, mom.v_expert);
  } else {
    opt_dense_->m() = std::move(mom.m_dense);
    opt_dense_->v() = std::move(mom.v_dense);
    opt_expert_->m() = std::move(mom.m_expert);
    opt_expert_->v() = std::move(mom.v_expert);
  }
  if (step_ > cfg_.train.steps)
    user_error("checkpoint {} is at step {} but [train] steps = {}: raise --train.steps to continue training", dir,
               step_, cfg_.train.steps);
}

}  // namespace foldmoe
