#include "rl/trainer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "core/check.h"
#include "core/timer.h"
#include "data/tokenizer.h"
#include "hf/hf_weights.h"
#include "parallel/grad_sync.h"
#include "parallel/logical_params.h"
#include "rl/advantage.h"
#include "rl/loss_aggregation.h"
#include "config/rl_rules.h"
#include "config/toml_reader.h"
#include "config/toml_writer.h"
#include "rl/dynamic_sampling.h"
#include "rl/step_metrics.h"
#include "rl/length_shaping.h"
#include "rl/policy_loss.h"
#include "rl/adaptive_temperature.h"
#include "rl/rollout.h"
#include "rl/rollout_split.h"
#include "rl/step_stages.h"
#include "train/checkpoint.h"
#include "train/logical_checkpoint.h"
#include "train/run_loop.h"
#include "train/trainer.h"

namespace foldmoe::rl {

namespace {

std::optional<EntropyStats> stats_from_json(const nlohmann::json& j) {
  if (j.is_null()) return std::nullopt;
  EntropyStats s;
  s.q = j.at("q").get<float>();
  s.sigma = j.at("sigma").get<float>();
  s.h_max = j.at("h_max").get<float>();
  s.h_min = j.at("h_min").get<float>();
  s.s_plus = j.at("s_plus").get<float>();
  s.s_minus = j.at("s_minus").get<float>();
  s.count = j.at("count").get<int64_t>();
  return s;
}

// Weights and buffers of a (logical) checkpoint into a model of any layout; every rank reads the file.
void load_model_weights(Model& m, const ProcessGroups& g, const std::string& dir) {
  if (hf::is_hf_directory(dir)) {  // each rank reads only its shards (docs/hf-models.md)
    hf::load_hf_weights(hf::read_hf_config(dir), m, g);
    return;
  }
  LogicalParams lp(m.dense(), m.expert(), g);
  train::TrainState st;
  st.dense = &lp.dense();
  st.expert = &lp.expert();
  st.buffers = m.buffers();
  train::load_checkpoint(dir, st);
  lp.scatter(m.dense(), lp.dense().params(), m.dense().params());
  lp.scatter(m.expert(), lp.expert().params(), m.expert().params());
  m.set_buffers(st.buffers);
}

// Sums the policy-loss counters and the given scalars over a group (counts are exact in fp64).
void all_reduce_counters(Communicator& comm, PolicyLossCounters& c, const std::vector<double*>& scalars) {
  int64_t* const ints[] = {&c.tokens,       &c.clip_high,     &c.clip_low,   &c.clip_dual,       &c.clip_log_ratio,
                           &c.neutral_zone, &c.dar_amplified, &c.dar_damped, &c.hhat_nonpositive};
  std::vector<double*> sums = {&c.sum_ratio, &c.sum_abs_log_ratio, &c.sum_hhat, &c.sum_adv};
  sums.insert(sums.end(), scalars.begin(), scalars.end());
  std::vector<double> v;
  for (const int64_t* p : ints) v.push_back(double(*p));
  for (const double* p : sums) v.push_back(*p);
  comm.all_reduce(v.data(), int64_t(v.size()));
  size_t q = 0;
  for (int64_t* p : ints) *p = int64_t(v[q++]);
  for (double* p : sums) *p = v[q++];
}

// The response as text for the verifier: its tokens up to the first stop token (eos, or a chat
// template's end-of-turn token), decoded.
std::string response_text(const data::Tokenizer& tok, const std::vector<int32_t>& tokens,
                          const std::vector<int32_t>& stop_ids) {
  std::vector<int32_t> ids;
  for (int32_t t : tokens) {
    if ((tok.eos_id() && t == *tok.eos_id()) || std::find(stop_ids.begin(), stop_ids.end(), t) != stop_ids.end()) break;
    ids.push_back(t);
  }
  return tok.decode(ids);
}

}  // namespace

Config rl_run_config(const Config& file_cfg, const std::string& init_checkpoint) {
  Config ck;
  if (hf::is_hf_directory(init_checkpoint)) {  // a Hugging Face model: its config.json and tokenizer
    ck = hf::apply_hf_config(Config{}, hf::read_hf_config(init_checkpoint));
    if (std::filesystem::exists(std::filesystem::path(init_checkpoint) / "tokenizer.json"))
      ck.data.tokenizer = init_checkpoint;
  } else {
    const nlohmann::json manifest = train::read_checkpoint_manifest(init_checkpoint);
    ck = config_from_toml(manifest.at("config").get<std::string>(), init_checkpoint + "/manifest.json");
  }
  const Config defaults;
  if (!(file_cfg.model == defaults.model) && !(file_cfg.model == ck.model))
    std::fprintf(stderr, "warning: [model] of the RL config differs from the checkpoint's; the checkpoint's is used\n");
  if (!(file_cfg.moe == defaults.moe) && !(file_cfg.moe == ck.moe))
    std::fprintf(stderr, "warning: [moe] of the RL config differs from the checkpoint's; the checkpoint's is used\n");
  Config c = ck;
  c.rl = file_cfg.rl;
  c.parallel = file_cfg.parallel;
  c.checkpoint = file_cfg.checkpoint;
  c.log = file_cfg.log;
  c.train.run_dir = file_cfg.train.run_dir;
  // How this run stops and what it tolerates are this run's choice (docs/long-runs.md).
  c.train.exit_signals = file_cfg.train.exit_signals;
  c.train.max_minutes = file_cfg.train.max_minutes;
  c.train.skip_nonfinite_steps = file_cfg.train.skip_nonfinite_steps;
  // An RL checkpoint's step is the RL step; keep it loadable by `foldmoe eval`/`generate`.
  c.train.steps = std::max(c.train.steps, file_cfg.rl.steps);
  return resolve_config_for_tokenizer(c, *data::load_tokenizer(c.data.tokenizer));
}

RlTrainer::RlTrainer(Config cfg, const std::string& init_checkpoint, ProcessGroups groups, bool write_outputs)
    : cfg_(std::move(cfg)),
      groups_(std::move(groups)),
      save_checkpoints_(write_outputs),
      write_outputs_(write_outputs && groups_.world->rank() == 0) {
  if (groups_.tp->size() > 1 || groups_.cp->size() > 1 || groups_.pp->size() > 1)
    user_error("foldmoe rl runs data-parallel (and with the model's expert layout) only: got tp = {}, cp = {}, pp = {}."
               "\n  fix: set [parallel] tp = cp = pp = 1 for RL.",
               groups_.tp->size(), groups_.cp->size(), groups_.pp->size());
  RlRunFacts facts;
  facts.model_is_moe = cfg_.moe.num_experts > 0;
  facts.moe_has_capacity_factor = cfg_.moe.capacity_factor.has_value() && *cfg_.moe.capacity_factor > 0;
  facts.has_reference_checkpoint = !cfg_.rl.reference.empty();
  facts.data_parallel = groups_.dp->size();
  facts.max_seq_len = cfg_.model.max_seq_len;
  validate_rl_config(rl_, facts);
  // The policy's tokenizer: the one its training data was made with.
  tokenizer_ = data::load_tokenizer(cfg_.data.tokenizer);
  document_start_ = data::document_start_id(cfg_, *tokenizer_);
  source_ = make_problem_source(rl_, uint64_t(cfg_.train.seed), *tokenizer_, cfg_.data.tokenizer);
  stop_ids_ = response_stop_ids(rl_, *tokenizer_, cfg_.data.tokenizer);
  model_ = std::make_unique<Model>(cfg_, groups_);
  OptimConfig oc;
  oc.weight_decay = rl_.optim.weight_decay;
  oc.beta1 = rl_.optim.beta1;
  oc.beta2 = rl_.optim.beta2;
  oc.eps = rl_.optim.eps;
  oc.grad_clip = rl_.optim.grad_clip;
  opt_dense_ = std::make_unique<ArenaAdamW>(model_->dense(), oc);
  opt_expert_ = std::make_unique<ArenaAdamW>(model_->expert(), oc);
  n_moe_ = model_->num_moe_layers();
  topk_ = cfg_.moe.topk;
  replay_ = n_moe_ > 0 ? rl_.router_replay_mode(true) : RouterReplayMode::Off;
  if (!cfg_.checkpoint.load.empty())
    load_weights(cfg_.checkpoint.load, /*with_state=*/true);
  else
    load_weights(init_checkpoint, /*with_state=*/false);
  // The frozen reference exists only for the KL term (docs/rl.md §3.7): no cost when kl_coef = 0.
  if (rl_.loss.kl_coef > 0) {
    ref_model_ = std::make_unique<Model>(cfg_, groups_);
    load_model_weights(*ref_model_, groups_, cfg_.rl.reference);
  }
}

// Checkpoints are logical (unsharded): every rank reads the whole file and keeps its shards
// (LogicalParams), and saves gather the shards to world rank 0, which writes. Both are collective.
void RlTrainer::load_weights(const std::string& dir, bool with_state) {
  if (!with_state && hf::is_hf_directory(dir)) {
    load_model_weights(*model_, groups_, dir);
    return;
  }
  LocalMoments mom;
  const LoadedCheckpoint ck = load_logical_checkpoint(dir, *model_, groups_, with_state ? &mom : nullptr);
  if (!with_state) return;
  if (!ck.extra.contains("rl_step"))
    user_error("{} is not an RL checkpoint (no rl_step in its manifest)\n  fix: pass it as --init to start RL from "
               "its weights, and use checkpoint.load only to resume an RL run",
               dir);
  opt_dense_->m() = std::move(mom.m_dense);
  opt_dense_->v() = std::move(mom.v_dense);
  opt_expert_->m() = std::move(mom.m_expert);
  opt_expert_->v() = std::move(mom.v_expert);
  step_ = ck.extra.at("rl_step").get<int64_t>();
  prompts_consumed_ = ck.extra.at("prompts_consumed").get<int64_t>();
  opt_step_ = ck.extra.at("optimizer_steps").get<int64_t>();
  ats_.restore(stats_from_json(ck.extra.at("ats_stats")));
}

void RlTrainer::save_checkpoint(const std::string& dir, train::AsyncCheckpointWriter* async) {
  const LocalMoments mom{opt_dense_->m(), opt_dense_->v(), opt_expert_->m(), opt_expert_->v()};
  save_logical_checkpoint(dir, *model_, groups_, &mom, step_, config_to_toml(cfg_),
                          {{"rl_step", step_},
                           {"prompts_consumed", prompts_consumed_},
                           {"optimizer_steps", opt_step_},
                           {"ats_stats", entropy_stats_json(ats_.for_rollout())},
                           {"preset", std::string(to_string(rl_.preset))}},
                          async);
}

std::vector<RlSample> RlTrainer::generate_round(int64_t count, int64_t k) {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<RlProblem> problems;
  RolloutOptions opt;
  for (int64_t j = 0; j < count; ++j) {
    const int64_t idx = prompts_consumed_ + j;
    problems.push_back(source_->train_problem(idx));
    prompts.push_back(problem_prompt_ids(problems.back(), document_start_, *tokenizer_, rl_.max_prompt_tokens));
    opt.prompt_ids.push_back(idx);
  }
  SamplingParams sp;
  sp.temperature = float(rl_.rollout.temperature);
  sp.top_p = float(rl_.rollout.top_p);
  sp.top_k = rl_.rollout.top_k.value_or(0);
  const AtsParams ap = ats_params(rl_);
  const std::optional<EntropyStats> prev = ats_.for_rollout();
  if (ap.enabled && prev) sp.temperature_fn = [ap, prev](float H) { return ats_temperature(H, prev, ap); };
  opt.max_new_tokens = int(rl_.max_response_tokens);
  opt.samples_per_prompt = rl_.group_size;
  opt.seed = uint64_t(rl_.seed);
  opt.step = k;
  opt.eos_id = tokenizer_->eos_id().value_or(-1);
  opt.stop_ids = stop_ids_;
  opt.record_routing = replay_ == RouterReplayMode::Rollout;
  // Each DP rank generates its share of the prompts; ranks that share expert collectives decode in
  // lock-step (all of them, since every rank runs this loop).
  if (groups_.etp_ep->size() > 1) opt.lockstep = groups_.world.get();
  std::vector<Response> out = generate_split(*model_, prompts, sp, opt, *groups_.dp);
  const OverlongParams op = overlong_params(rl_);
  std::vector<RlSample> samples;
  samples.reserve(out.size());
  for (Response& r : out) {
    RlSample s;
    s.problem = problems[size_t(r.prompt)];
    s.problem_index = prompts_consumed_ + r.prompt;
    s.prompt = prompts[size_t(r.prompt)];
    s.tokens = std::move(r.tokens);
    s.routing = std::move(r.routing);
    s.temperature = std::move(r.temperature);
    s.logprob_rollout = std::move(r.logprob_policy);
    s.length = int64_t(s.tokens.size());
    s.truncated = r.finish == FinishReason::Length;
    const ScoreResult sc = source_->score(s.problem, response_text(*tokenizer_, s.tokens, stop_ids_));
    const ResponseReward rr = assemble_reward(sc.score, s.length, op);
    s.reward = rr.reward;
    s.acc = rr.acc;
    s.penalty = overlong_penalty(s.length, op);
    samples.push_back(std::move(s));
  }
  prompts_consumed_ += count;
  return samples;
}

// Rows n = s·B + b; sequence b = prompt + response, inputs seq[0..T-1), targets seq[1..T); the mask
// marks the positions that predict response tokens.
MicroBatch RlTrainer::build_micro_batch(const std::vector<RlSample>& batch, const std::vector<int64_t>& idx,
                                        bool for_update) const {
  MicroBatch mb;
  mb.B = int64_t(idx.size());
  int64_t S = 1;
  for (int64_t i : idx) S = std::max<int64_t>(S, int64_t(batch[size_t(i)].prompt.size() + batch[size_t(i)].tokens.size()) - 1);
  mb.S = S;
  const int64_t N = mb.N(), LK = int64_t(n_moe_) * topk_;
  const int32_t pad = tokenizer_->pad_id().value_or(0);
  mb.ids_N.assign(size_t(N), pad);
  mb.targets_N.assign(size_t(N), pad);
  mb.mask_N.assign(size_t(N), 0);
  mb.positions_N.resize(size_t(N));
  const bool replay = (replay_ == RouterReplayMode::Rollout) || (replay_ == RouterReplayMode::Old && for_update);
  if (replay && LK > 0) mb.replay_NLK.assign(size_t(N * LK), -1);
  for (int64_t b = 0; b < mb.B; ++b) {
    const RlSample& x = batch[size_t(idx[size_t(b)])];
    mb.global_seq_B.push_back(idx[size_t(b)]);
    const int64_t P = int64_t(x.prompt.size()), T = P + x.length;
    for (int64_t s = 0; s < S; ++s) {
      const int64_t n = s * mb.B + b;
      mb.positions_N[size_t(n)] = int32_t(s);
      if (s + 1 >= T) continue;
      mb.ids_N[size_t(n)] = s < P ? x.prompt[size_t(s)] : x.tokens[size_t(s - P)];
      mb.targets_N[size_t(n)] = s + 1 < P ? x.prompt[size_t(s + 1)] : x.tokens[size_t(s + 1 - P)];
      mb.mask_N[size_t(n)] = s + 1 >= P ? 1 : 0;
      if (!mb.replay_NLK.empty()) {
        const std::vector<int32_t>& rec = replay_ == RouterReplayMode::Rollout ? x.routing : x.old_routing;
        FOLDMOE_CHECK(int64_t(rec.size()) >= (s + 1) * LK, "router record too short: {} < {}", rec.size(), (s + 1) * LK);
        std::copy_n(rec.begin() + s * LK, LK, mb.replay_NLK.begin() + n * LK);
      }
    }
  }
  return mb;
}

RolloutBatch RlTrainer::rollout_stage(int64_t k) {
  Stopwatch timer;
  const int n = rl_.group_size;
  const int64_t P = rl_.prompts_per_step;
  RolloutBatch out;
  auto summarize_round = [&](const std::vector<RlSample>& round) {
    for (const RlSample& s : round) {
      out.generated_tokens += s.length;
      out.temperature.add(summarize(s.temperature));
    }
    out.generated.add(summarize_samples(round, n));
  };
  if (rl_.dynamic_sampling.enabled) {
    DynamicSampler ds(P, rl_.dynamic_sampling.max_rounds);
    std::vector<std::vector<RlSample>> round_samples;
    for (;;) {
      round_samples.push_back(generate_round(rl_.gen_prompts_per_round(), k));
      const std::vector<RlSample>& r = round_samples.back();
      summarize_round(r);
      std::vector<float> values;
      for (const RlSample& s : r)
        values.push_back(dynamic_sampling_value(rl_.dynamic_sampling.metric, s.acc, s.reward));
      if (ds.add_round(values, n) == DynamicSampler::Status::Done) break;
    }
    out.rounds = ds.rounds();
    for (const GroupRef& g : ds.batch())
      for (int i = 0; i < n; ++i)
        out.samples.push_back(std::move(round_samples[size_t(g.round)][size_t(g.group * n + i)]));
  } else {
    out.samples = generate_round(P, k);
    summarize_round(out.samples);
  }
  out.seconds = timer.seconds();
  FOLDMOE_CHECK(int64_t(out.samples.size()) == P * n, "training batch has {} responses, expected {}",
                out.samples.size(), P * n);
  return out;
}

// Stage 4 over exactly the micro-batches of epoch 0's updates, so that r = 1 bit for bit there.
OldPolicyPass RlTrainer::old_policy_stage(std::vector<RlSample>& batch, const MinibatchPlan& plan) {
  const int DP = groups_.dp->size(), d = groups_.dp->rank();
  const float t_base = float(rl_.rollout.temperature);
  const int64_t V = cfg_.model.vocab, LK = int64_t(n_moe_) * topk_;
  OldPolicyPass out;
  out.flips.assign(size_t(n_moe_) + 2, 0.0);
  for (RlSample& s : batch) {
    s.logp_old.assign(size_t(s.length), 0.0f);
    s.ent_old.assign(size_t(s.length), 0.0f);
    if (ref_model_) s.logp_ref.assign(size_t(s.length), 0.0f);
  }
  std::vector<float> logits, ref_logits;
  for (int64_t b = 0; b < plan.minibatches; ++b)
    for (const std::vector<int64_t>& idx : plan.micro_batches(0, b, DP, d, cfg_.rl.micro_batch)) {
      const MicroBatch mb = build_micro_batch(batch, idx, /*for_update=*/false);
      MicroBatchResult res;
      model_->forward_logits(mb, logits, &res);
      if (!mb.replay_NLK.empty() && !res.moe.empty() && !res.moe[0].flipped_N.empty()) {
        out.flips[size_t(n_moe_)] += double(res.moe[0].replayed_rows);
        for (size_t l = 0; l < res.moe.size(); ++l) out.flips[l] += double(res.moe[l].flipped_rows);
        for (int64_t row = 0; row < mb.N(); ++row) {
          bool any = false;
          for (const MoEStats& st : res.moe) any = any || st.flipped_N[size_t(row)];
          out.flips[size_t(n_moe_) + 1] += any;
        }
      }
      // The reference sees the same micro-batch and replayed routes, so log π_ref = log π_old at step 1.
      if (ref_model_) ref_model_->forward_logits(mb, ref_logits);
      out.tokens += mb.N();
      for (int64_t bi = 0; bi < mb.B; ++bi) {
        RlSample& x = batch[size_t(idx[size_t(bi)])];
        const int64_t Pl = int64_t(x.prompt.size());
        for (int64_t t = 0; t < x.length; ++t) {
          const int64_t row = (Pl - 1 + t) * mb.B + bi;
          const TokenLogProb tl = token_logprob_entropy(
              std::span<const float>(logits.data() + row * V, size_t(V)), x.tokens[size_t(t)], t_base);
          x.logp_old[size_t(t)] = tl.logp;
          x.ent_old[size_t(t)] = tl.entropy;
          if (ref_model_)
            x.logp_ref[size_t(t)] =
                token_logprob_entropy(std::span<const float>(ref_logits.data() + row * V, size_t(V)),
                                      x.tokens[size_t(t)], t_base)
                    .logp;
        }
        if (replay_ == RouterReplayMode::Old && LK > 0) {
          const int64_t T = Pl + x.length;
          x.old_routing.assign(size_t((T - 1) * LK), -1);
          for (int64_t s = 0; s < T - 1; ++s)
            std::copy_n(res.routing_NLK.begin() + (s * mb.B + bi) * LK, LK, x.old_routing.begin() + s * LK);
        }
      }
    }
  if (DP > 1) {
    // Each response was computed on one rank, zeros elsewhere: the sum is exact. Mode `old` also
    // shares the stage-4 routing (as id + 1, exact in fp32), since later epochs may train a
    // response on another rank.
    const bool old_routes = replay_ == RouterReplayMode::Old && LK > 0;
    std::vector<float> flat;
    for (const RlSample& s : batch) {
      flat.insert(flat.end(), s.logp_old.begin(), s.logp_old.end());
      flat.insert(flat.end(), s.ent_old.begin(), s.ent_old.end());
      flat.insert(flat.end(), s.logp_ref.begin(), s.logp_ref.end());
      if (!old_routes) continue;
      const size_t len = size_t((int64_t(s.prompt.size()) + s.length - 1) * LK);
      if (s.old_routing.empty())
        flat.insert(flat.end(), len, 0.0f);
      else
        for (int32_t e : s.old_routing) flat.push_back(float(e + 1));
    }
    groups_.dp->all_reduce(flat.data(), int64_t(flat.size()));
    size_t o = 0;
    for (RlSample& s : batch) {
      std::copy_n(flat.begin() + int64_t(o), s.length, s.logp_old.begin());
      o += size_t(s.length);
      std::copy_n(flat.begin() + int64_t(o), s.length, s.ent_old.begin());
      o += size_t(s.length);
      std::copy_n(flat.begin() + int64_t(o), s.logp_ref.size(), s.logp_ref.begin());
      o += s.logp_ref.size();
      if (!old_routes) continue;
      const size_t len = size_t((int64_t(s.prompt.size()) + s.length - 1) * LK);
      s.old_routing.resize(len);
      for (size_t q = 0; q < len; ++q) s.old_routing[q] = int32_t(flat[o + q]) - 1;
      o += len;
    }
    groups_.dp->all_reduce(out.flips.data(), int64_t(out.flips.size()));
  }
  return out;
}

// Stages 7-8: M mini-batch updates per epoch at learning rate lr.
UpdateTotals RlTrainer::update_stage(const std::vector<RlSample>& batch, const MinibatchPlan& plan,
                                     const EntropyStage& entropy, const BatchAdvantages& adv, double lr) {
  const int DP = groups_.dp->size(), d = groups_.dp->rank();
  const float t_base = float(rl_.rollout.temperature);
  const int64_t V = cfg_.model.vocab, R = int64_t(batch.size());
  const PolicyLossParams pp = policy_loss_params(rl_);
  const bool modulate = rl_.hapo.dar.enabled || rl_.hapo.aac.enabled;
  const bool scope_old = rl_.hapo.hhat_scope == HhatScope::MinibatchOld;
  const float ent_coef = float(rl_.loss.entropy_coef);
  UpdateTotals out;
  std::vector<int64_t> loss_tokens(static_cast<size_t>(R));
  for (int64_t i = 0; i < R; ++i)
    loss_tokens[size_t(i)] = loss_token_count(batch[size_t(i)].length, batch[size_t(i)].truncated, rl_.dapo.overlong_filter);
  for (int e = 0; e < plan.epochs(); ++e)
    for (int64_t b = 0; b < plan.minibatches; ++b) {
      std::vector<int64_t> mb_loss_tokens;
      for (int64_t i : plan.minibatch(e, b)) mb_loss_tokens.push_back(loss_tokens[size_t(i)]);
      const MinibatchCounts counts = count_minibatch(mb_loss_tokens, rl_.max_response_tokens);
      double mb_loss = 0;
      for (const std::vector<int64_t>& idx : plan.micro_batches(e, b, DP, d, cfg_.rl.micro_batch)) {
        const MicroBatch mb = build_micro_batch(batch, idx, /*for_update=*/true);
        out.tokens += mb.N();
        MoEStepContext ctx;
        ctx.training = true;
        ctx.step = opt_step_;
        ctx.loss_seed = 0.0;  // no MoE auxiliary losses during RL
        ctx.dp_size = DP;
        model_->forward_backward_logits(mb, ctx, [&](const std::vector<float>& lg, std::vector<float>& dlg) {
          // Per-token inputs over the valid positions of this micro-batch, response by response.
          std::vector<float> lp, lp_old, av, hh, w, lse, ent_live, lref;
          std::vector<int64_t> rows;
          std::vector<int32_t> toks;
          for (int64_t bi = 0; bi < mb.B; ++bi) {
            const int64_t i = idx[size_t(bi)];
            const RlSample& x = batch[size_t(i)];
            const int64_t Pl = int64_t(x.prompt.size());
            const float wi = aggregation_weight(rl_.loss.aggregation, loss_tokens[size_t(i)], counts);
            for (int64_t t = 0; t < x.length; ++t) {
              const int64_t row = (Pl - 1 + t) * mb.B + bi;
              const TokenLogProb tl = token_logprob_entropy(std::span<const float>(lg.data() + row * V, size_t(V)),
                                                            x.tokens[size_t(t)], t_base);
              lp.push_back(tl.logp);
              lse.push_back(tl.lse);
              ent_live.push_back(tl.entropy);
              lp_old.push_back(x.logp_old[size_t(t)]);
              if (ref_model_) lref.push_back(x.logp_ref[size_t(t)]);
              av.push_back(adv.adv[size_t(i)]);
              if (modulate && scope_old)
                hh.push_back(entropy.hhat_epoch[size_t(e)][size_t(entropy.offset[size_t(i)] + t)]);
              w.push_back(t < loss_tokens[size_t(i)] ? wi : 0.0f);
              rows.push_back(row);
              toks.push_back(x.tokens[size_t(t)]);
            }
          }
          if (modulate && !scope_old) hh = population_hhat(ent_live, rl_.hapo.entropy_pivot, rl_.hapo.hhat_sign);
          PolicyLossInputs in{lp, lp_old, av, hh, w, lref};
          const PolicyLossResult res = policy_loss(in, pp);
          for (size_t j = 0; j < lref.size(); ++j)
            if (w[j] > 0) {
              const double dd = double(lref[j]) - double(lp[j]);
              out.kl_sum += std::exp(dd) - dd - 1.0;
              out.kl_tokens += 1;
            }
          out.counters.add(res.counters);
          if (e == 0 && b == 0)
            for (size_t j = 0; j < lp.size(); ++j)
              if (w[j] > 0)
                out.first_max_abs_logr = std::max(out.first_max_abs_logr, double(std::abs(lp[j] - lp_old[j])));
          mb_loss += res.loss;
          for (size_t j = 0; j < rows.size(); ++j) {
            const std::span<const float> row(lg.data() + rows[j] * V, size_t(V));
            const std::span<float> drow(dlg.data() + rows[j] * V, size_t(V));
            if (res.dloss_dlogp[j] != 0.0f)
              token_logprob_backward(row, toks[j], lse[j], res.dloss_dlogp[j], drow, t_base);
            // Entropy bonus −coef · H per token, weighted like the policy loss (after the
            // log-prob backward, which overwrites the row).
            if (ent_coef > 0 && w[j] > 0) {
              mb_loss -= double(ent_coef) * double(w[j]) * double(ent_live[j]);
              token_entropy_backward(row, lse[j], ent_live[j], -ent_coef * w[j], drow, t_base);
            }
          }
        });
      }
      model_->reduce_tied_embedding_grads();
      if (DP > 1) reduce_gradients(model_->dense(), model_->expert(), groups_, /*per_token_loss=*/true);
      const auto [sq_d, sq_e] = grad_square_norms(model_->dense(), model_->expert(), groups_);
      const double norm = std::sqrt(sq_d + sq_e);
      if (!std::isfinite(norm)) {
        ++out.skipped;
      } else {
        // Clipping is folded into the optimizer pass (which also zeroes the gradients).
        const float clip = float(clip_coefficient(norm, rl_.optim.grad_clip));
        ++opt_step_;
        opt_dense_->step(lr, opt_step_, clip);
        opt_expert_->step(lr, opt_step_, clip);
        if (!rl_.router_replay.freeze_expert_bias) model_->finalize_global_batch();
        out.sum_norm += norm;
        ++out.updates;
      }
      model_->dense().zero_grad();
      model_->expert().zero_grad();
      out.loss_sum += mb_loss;
    }
  if (DP > 1) {
    // Per-token statistics and the loss were accumulated over this rank's responses: sum them
    // (counts are exact in fp64) so that every layout logs the whole batch.
    all_reduce_counters(*groups_.dp, out.counters, {&out.loss_sum, &out.kl_sum, &out.kl_tokens});
    groups_.dp->all_reduce(&out.first_max_abs_logr, 1, ReduceOp::Max);
  }
  return out;
}

nlohmann::ordered_json RlTrainer::step() {
  Stopwatch step_timer;
  const int64_t k = step_ + 1;
  RolloutBatch rollout = rollout_stage(k);
  std::vector<RlSample>& batch = rollout.samples;
  // Mini-batch partitions (one seeded permutation per epoch), fixed before stage 4.
  const MinibatchPlan plan =
      plan_minibatches(uint64_t(rl_.seed), k, rl_.ppo_epochs, int64_t(batch.size()), rl_.num_minibatches());
  Stopwatch train_timer;
  const OldPolicyPass old = old_policy_stage(batch, plan);
  const EntropyStage entropy = entropy_stage(batch, plan, rl_);
  const BatchAdvantages adv = advantage_stage(batch, rl_);
  const double lr = rl_.learning_rate(k);
  const UpdateTotals upd = update_stage(batch, plan, entropy, adv, lr);
  skipped_total_ += upd.skipped;
  ats_.finish_step(entropy.stats);
  step_ = k;
  StepRecordInputs in;
  in.step = k;
  in.lr = lr;
  in.t_base = float(rl_.rollout.temperature);
  in.n_moe = n_moe_;
  in.train_seconds = train_timer.seconds();
  in.train_tokens = old.tokens + upd.tokens;
  in.step_seconds = step_timer.seconds();
  return step_record(in, rl_, rollout, entropy, adv, old, upd);
}

RlEvalResult RlTrainer::evaluate() {
  RlEvalResult r;
  r.step = step_;
  const std::vector<RlProblem>& probs = source_->eval_problems();
  if (probs.empty()) return r;
  std::vector<std::vector<int32_t>> prompts;
  RolloutOptions opt;
  for (size_t i = 0; i < probs.size(); ++i) {
    prompts.push_back(problem_prompt_ids(probs[i], document_start_, *tokenizer_, rl_.max_prompt_tokens));
    opt.prompt_ids.push_back(int64_t(i));
  }
  SamplingParams sp;
  sp.temperature = float(rl_.eval.temperature);
  sp.greedy = rl_.eval.temperature <= 0;
  sp.top_p = float(rl_.eval.top_p);
  opt.max_new_tokens = int(rl_.max_response_tokens);
  opt.samples_per_prompt = rl_.eval.samples;
  // The same evaluation stream at every evaluation, for every rl.seed and preset (common random
  // numbers: step-0 results are identical across runs from one checkpoint).
  opt.seed = uint64_t(cfg_.train.seed) ^ 0xE7A1E7A1ull;
  opt.step = 0;
  opt.eos_id = tokenizer_->eos_id().value_or(-1);
  opt.stop_ids = stop_ids_;
  opt.record_routing = false;
  if (groups_.etp_ep->size() > 1) opt.lockstep = groups_.world.get();
  const std::vector<Response> out = generate_split(*model_, prompts, sp, opt, *groups_.dp);
  std::map<std::string, std::pair<double, int64_t>> per_task;
  double len = 0;
  for (const Response& resp : out) {
    const RlProblem& p = probs[size_t(resp.prompt)];
    const ScoreResult sc = source_->score(p, response_text(*tokenizer_, resp.tokens, stop_ids_));
    auto& acc = per_task[p.task];
    acc.first += sc.acc ? 1.0 : 0.0;
    acc.second += 1;
    len += double(resp.tokens.size());
  }
  for (const std::string& t : source_->eval_tasks()) {
    const auto& a = per_task[t];
    r.accuracy[t] = a.second ? a.first / double(a.second) : 0.0;
    r.avg += r.accuracy[t];
  }
  r.avg /= double(std::max<size_t>(r.accuracy.size(), 1));
  r.mean_length = out.empty() ? 0.0 : len / double(out.size());
  return r;
}

std::optional<EvalOutcome> RlTrainer::evaluation_outcome() {
  const RlEvalResult ev = evaluate();
  if (ev.accuracy.empty()) return std::nullopt;
  EvalOutcome o;
  o.line = fmt::format("eval step {:4d} |", ev.step);
  o.record["type"] = "eval";
  o.record["step"] = ev.step;
  for (const auto& [t, a] : ev.accuracy) {
    o.line += fmt::format(" {} {:.1f}% |", t, 100 * a);
    o.record["accuracy_" + t] = a;
  }
  o.line += fmt::format(" avg {:.1f}% | len {:.1f}", 100 * ev.avg, ev.mean_length);
  o.record["accuracy"] = ev.avg;
  o.record["response_length_mean"] = ev.mean_length;
  return o;
}

std::string format_rl_step_line(const nlohmann::ordered_json& m) {
  return fmt::format(
      "rl step {:4d} | reward {:+.3f} | acc {:5.1f}% | len {:5.1f} | ent {:.3f} | T {:.3f} | clip "
      "{:.1f}%/{:.1f}%/{:.1f}% "
      "| |logr| {:.4f} | gnorm {:.3f} | lr {:.2e} | ds {} | {:.0f} tok/s",
      m["step"].get<int64_t>(), m["reward_mean"].get<double>(), 100 * m["accuracy"].get<double>(),
      m["response_length_mean"].get<double>(), m["entropy_mean"].get<double>(), m["temperature_mean"].get<double>(),
      100 * m["clip_high_frac"].get<double>(), 100 * m["clip_low_frac"].get<double>(),
      100 * m["clip_dual_frac"].get<double>(), m["abs_log_ratio_mean"].get<double>(), m["grad_norm"].get<double>(),
      m["lr"].get<double>(), m["ds_rounds"].get<int>(), m["train_tokens_per_s"].get<double>());
}

void RlTrainer::run(const RunDirectory& dir) {
  RunSchedule schedule = base_run_schedule(cfg_, "rl", cfg_.rl.steps, cfg_.rl.checkpoint_every, save_checkpoints_,
                                           groups_.world->size());
  schedule.eval_every = rl_.eval.every;
  schedule.eval_before = rl_.eval.before_train;
  schedule.eval_at_end = true;
  RunHooks hooks;
  hooks.step = [&] {
    StepOutcome o;
    o.record = step();
    o.line = format_rl_step_line(o.record);
    o.loss = o.record["loss"].get<double>();
    // A non-finite loss whose mini-batch updates were skipped (non-finite gradient norm) changed
    // nothing: RL's own guard handled it. Any other non-finite loss stops the run (C1).
    o.skipped = !std::isfinite(o.loss) && o.record["skipped_updates"].get<int64_t>() > 0;
    o.tokens = o.record["response_tokens"].get<int64_t>();
    return o;
  };
  hooks.evaluate = [&] { return evaluation_outcome(); };
  hooks.save = [&](const std::string& path, train::AsyncCheckpointWriter* async) { save_checkpoint(path, async); };
  hooks.world = groups_.world.get();
  hooks.world_max = [&](double v) {
    groups_.world->all_reduce(&v, 1, ReduceOp::Max);
    return v;
  };
  const int64_t total = model_parameter_count(cfg_);
  const int64_t here = arena_parameter_count(model_->dense()) + arena_parameter_count(model_->expert());
  const std::string start = fmt::format(
      "foldmoe rl: preset {}, steps {}..{}, P {} x n {}, {} updates/step, L_max {}, replay {}, model {} parameters "
      "({}), this rank {}, run dir {}",
      to_string(rl_.preset), step_ + 1, cfg_.rl.steps, rl_.prompts_per_step, rl_.group_size, rl_.num_minibatches(),
      rl_.max_response_tokens, to_string(replay_), total, format_count(total), here, dir.plan().run_dir.string());
  run_loop(dir, config_to_toml(cfg_), step_, schedule, hooks, write_outputs_, start);
}

}  // namespace foldmoe::rl
