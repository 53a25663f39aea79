#include "rl/step_stages.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/check.h"
#include "core/rng.h"

namespace foldmoe::rl {

RolloutSummary summarize_samples(std::span<const RlSample> samples, int group_size) {
  std::vector<float> rewards, pens;
  std::vector<uint8_t> acc, trunc;
  std::vector<int64_t> lens;
  for (const RlSample& s : samples) {
    rewards.push_back(s.reward);
    pens.push_back(s.penalty);
    acc.push_back(s.acc);
    trunc.push_back(s.truncated);
    lens.push_back(s.length);
  }
  return summarize_rollout(rewards, acc, lens, trunc, pens, group_size);
}

std::span<const int64_t> MinibatchPlan::minibatch(int e, int64_t b) const {
  return std::span<const int64_t>(perms[size_t(e)]).subspan(size_t(b * per_minibatch), size_t(per_minibatch));
}

std::vector<std::vector<int64_t>> MinibatchPlan::micro_batches(int e, int64_t b, int DP, int d,
                                                               int64_t micro_batch) const {
  std::vector<int64_t> local;
  const std::span<const int64_t> mb = minibatch(e, b);
  for (size_t j = 0; j < mb.size(); ++j)
    if (int64_t(j) % DP == d) local.push_back(mb[j]);
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < local.size(); i += size_t(micro_batch))
    out.emplace_back(local.begin() + int64_t(i),
                     local.begin() + int64_t(std::min(local.size(), i + size_t(micro_batch))));
  return out;
}

MinibatchPlan plan_minibatches(uint64_t seed, int64_t step, int epochs, int64_t responses, int64_t minibatches) {
  FOLDMOE_CHECK(minibatches > 0 && responses % minibatches == 0, "{} responses in {} mini-batches", responses,
                minibatches);
  MinibatchPlan plan;
  plan.minibatches = minibatches;
  plan.per_minibatch = responses / minibatches;
  for (int e = 0; e < epochs; ++e) {
    // Seeded Fisher-Yates permutation of [0, responses) for (seed, step, epoch).
    std::vector<int64_t> p(static_cast<size_t>(responses));
    std::iota(p.begin(), p.end(), 0);
    const CounterRng rng(seed, "rl.minibatch.perm", uint64_t(step) * 1024 + uint64_t(e));
    for (int64_t k = responses - 1; k > 0; --k) {
      const uint32_t u = rng.bits(uint64_t(k))[0];
      std::swap(p[size_t(k)], p[size_t((uint64_t(u) * uint64_t(k + 1)) >> 32)]);
    }
    plan.perms.push_back(std::move(p));
  }
  return plan;
}

EntropyStage entropy_stage(std::span<const RlSample> batch, const MinibatchPlan& plan, const RlConfig& rl) {
  EntropyStage out;
  const int64_t R = int64_t(batch.size());
  std::vector<float> ent_flat;
  out.offset.assign(size_t(R) + 1, 0);
  for (int64_t i = 0; i < R; ++i) {
    const RlSample& s = batch[size_t(i)];
    ent_flat.insert(ent_flat.end(), s.ent_old.begin(), s.ent_old.end());
    out.offset[size_t(i) + 1] = out.offset[size_t(i)] + s.length;
  }
  out.stats = compute_entropy_stats(ent_flat, rl.hapo.entropy_pivot);
  out.summary = summarize(ent_flat);
  const bool modulate = rl.hapo.dar.enabled || rl.hapo.aac.enabled;
  if (!modulate || rl.hapo.hhat_scope != HhatScope::MinibatchOld) return out;
  for (int e = 0; e < plan.epochs(); ++e) {
    std::vector<int32_t> mb_of(ent_flat.size(), -1);
    for (int64_t j = 0; j < R; ++j) {
      const int64_t i = plan.perms[size_t(e)][size_t(j)];
      for (int64_t t = out.offset[size_t(i)]; t < out.offset[size_t(i) + 1]; ++t)
        mb_of[size_t(t)] = int32_t(j / plan.per_minibatch);
    }
    out.hhat_epoch.push_back(
        minibatch_old_hhat(ent_flat, mb_of, int32_t(plan.minibatches), rl.hapo.entropy_pivot, rl.hapo.hhat_sign).hhat);
  }
  return out;
}

BatchAdvantages advantage_stage(std::span<const RlSample> batch, const RlConfig& rl) {
  std::vector<float> rewards;
  std::vector<int64_t> lengths;
  for (const RlSample& s : batch) {
    rewards.push_back(s.reward);
    lengths.push_back(s.length);
  }
  return batch_advantages(rewards, lengths, rl.group_size, advantage_params(rl));
}

nlohmann::json entropy_stats_json(const std::optional<EntropyStats>& s) {
  if (!s) return nullptr;
  return {{"q", s->q},           {"sigma", s->sigma},     {"h_max", s->h_max}, {"h_min", s->h_min},
          {"s_plus", s->s_plus}, {"s_minus", s->s_minus}, {"count", s->count}};
}

nlohmann::ordered_json step_record(const StepRecordInputs& in, const RlConfig& rl, const RolloutBatch& rollout,
                                   const EntropyStage& entropy, const BatchAdvantages& adv, const OldPolicyPass& old,
                                   const UpdateTotals& upd) {
  const RolloutSummary& gen = rollout.generated;
  const RolloutSummary batch = summarize_samples(rollout.samples, rl.group_size);
  const SeriesSummary& temp = rollout.temperature;
  const PolicyLossCounters& c = upd.counters;
  double sum_abs_rollout_diff = 0, max_abs_rollout_diff = 0;
  int64_t n_tok = 0;
  for (const RlSample& s : rollout.samples)
    for (int64_t t = 0; t < s.length; ++t) {
      const double d = std::abs(double(s.logprob_rollout[size_t(t)]) - double(s.logp_old[size_t(t)]));
      sum_abs_rollout_diff += d;
      max_abs_rollout_diff = std::max(max_abs_rollout_diff, d);
      ++n_tok;
    }
  nlohmann::ordered_json j;
  j["type"] = "train";
  j["step"] = in.step;
  j["reward_mean"] = gen.reward_mean();
  j["accuracy"] = gen.accuracy();
  j["batch_reward_mean"] = batch.reward_mean();
  j["batch_accuracy"] = batch.accuracy();
  j["identical_group_rate"] = gen.identical_group_rate();
  j["tlga_fallback_rate"] = double(adv.fallback_groups) / double(rl.prompts_per_step);
  j["response_length_mean"] = gen.length_mean();
  j["response_length_max"] = gen.max_length;
  j["truncation_rate"] = gen.truncation_rate();
  j["overlong_penalty_mean"] = gen.overlong_penalty_mean();
  j["entropy_mean"] = entropy.summary.mean();
  j["stats"] = entropy_stats_json(entropy.stats);
  j["temperature_mean"] = temp.mean();
  j["temperature_min"] = temp.count ? double(temp.min) : in.t_base;
  j["temperature_max"] = temp.count ? double(temp.max) : in.t_base;
  j["hhat_nonpositive_frac"] = c.frac(c.hhat_nonpositive);
  j["hhat_mean"] = c.tokens ? c.sum_hhat / double(c.tokens) : 0.0;
  j["dar_neutral_frac"] = c.frac(c.neutral_zone);
  j["dar_amplified_frac"] = c.frac(c.dar_amplified);
  j["dar_damped_frac"] = c.frac(c.dar_damped);
  j["clip_high_frac"] = c.frac(c.clip_high);
  j["clip_low_frac"] = c.frac(c.clip_low);
  j["clip_dual_frac"] = c.frac(c.clip_dual);
  j["ratio_mean"] = c.mean_ratio();
  j["abs_log_ratio_mean"] = c.mean_abs_log_ratio();
  j["first_minibatch_max_abs_log_ratio"] = upd.first_max_abs_logr;
  j["rollout_vs_old_abs_logprob_mean"] = n_tok ? sum_abs_rollout_diff / double(n_tok) : 0.0;
  j["rollout_vs_old_abs_logprob_max"] = max_abs_rollout_diff;
  const int L = in.n_moe;
  if (int(old.flips.size()) == L + 2 && old.flips[size_t(L)] > 0) {  // router replay: live top-k vs the record
    const double rows = old.flips[size_t(L)];
    std::vector<double> per_layer;
    for (int l = 0; l < L; ++l) per_layer.push_back(old.flips[size_t(l)] / rows);
    j["route_flip_rate"] = per_layer;
    j["route_flip_any_frac"] = old.flips[size_t(L) + 1] / rows;
  }
  j["loss"] = upd.loss_sum / double(rl.num_minibatches() * rl.ppo_epochs);
  j["kl_mean"] = upd.kl_tokens > 0 ? upd.kl_sum / upd.kl_tokens : 0.0;  // 0 without a reference
  j["grad_norm"] = upd.updates ? upd.sum_norm / double(upd.updates) : 0.0;
  j["updates"] = upd.updates;
  j["skipped_updates"] = upd.skipped;
  j["lr"] = in.lr;
  j["ds_rounds"] = rollout.rounds;
  j["rollout_tokens_per_s"] = rollout.seconds > 0 ? double(rollout.generated_tokens) / rollout.seconds : 0.0;
  j["train_tokens_per_s"] = in.train_seconds > 0 ? double(in.train_tokens) / in.train_seconds : 0.0;
  j["response_tokens"] = rollout.generated_tokens;
  j["step_time_s"] = in.step_seconds;
  return j;
}

}  // namespace foldmoe::rl
