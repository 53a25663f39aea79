#include "config/rl_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace foldmoe::rl {
namespace {

// V1 for one [rl] key: `ok` is the range test, `range` says it in words ("must be >= 1").
template <typename T>
void range(Problems& p, bool ok, std::string_view key, T v, std::string_view range, std::string fix) {
  // Non-finite floats are reported by V2 (config validation) already.
  if constexpr (std::is_floating_point_v<T>)
    if (!std::isfinite(v)) return;
  if (!ok) p.add("V1", fmt::format("[rl] {} = {} {}.", key, v, range), std::move(fix));
}

}  // namespace

Problems rl_config_problems(const RlConfig& c, const RlRunFacts& facts) {
  Problems p;
  range(p, c.prompts_per_step >= 1, "prompts_per_step", c.prompts_per_step, "must be >= 1",
        "set prompts_per_step >= 1.");
  range(p, c.minibatch_prompts >= 1, "minibatch_prompts", c.minibatch_prompts, "must be >= 1",
        "set minibatch_prompts >= 1.");
  if (c.minibatch_prompts >= 1 && c.prompts_per_step >= 1 && c.prompts_per_step % c.minibatch_prompts != 0)
    p.add("R1",
          fmt::format("[rl] prompts_per_step = {} is not divisible by minibatch_prompts = {}.", c.prompts_per_step,
                      c.minibatch_prompts),
          "choose minibatch_prompts dividing prompts_per_step.");
  range(p, c.group_size >= 1, "group_size", c.group_size, "must be >= 1", "set group_size >= 1.");
  range(p, c.ppo_epochs >= 1, "ppo_epochs", c.ppo_epochs, "must be >= 1", "set ppo_epochs >= 1.");
  range(p, c.max_prompt_tokens >= 1, "max_prompt_tokens", c.max_prompt_tokens, "must be >= 1",
        "set max_prompt_tokens >= 1.");
  range(p, c.max_response_tokens >= 1, "max_response_tokens", c.max_response_tokens, "must be >= 1",
        "set max_response_tokens >= 1.");
  range(p, c.steps >= 1, "steps", c.steps, "must be >= 1", "set rl.steps >= 1.");
  range(p, c.micro_batch >= 1, "micro_batch", c.micro_batch, "must be >= 1", "set rl.micro_batch = 64.");
  range(p, c.eval_questions >= 0, "eval_questions", c.eval_questions, "must be >= 0", "set rl.eval_questions = 200.");
  range(p, c.checkpoint_every >= 0, "checkpoint_every", c.checkpoint_every, "must be >= 0",
        "set rl.checkpoint_every = 0 to save only at the end.");
  range(p, c.rollout.temperature > 0, "rollout.temperature", c.rollout.temperature, "must be > 0",
        "use a positive temperature.");
  range(p, c.rollout.top_p > 0 && c.rollout.top_p <= 1, "rollout.top_p", c.rollout.top_p, "must satisfy 0 < top_p <= 1",
        "use 0 < top_p <= 1 (1 = off).");
  if (c.rollout.top_k)
    range(p, *c.rollout.top_k >= 1, "rollout.top_k", *c.rollout.top_k, "must be >= 1",
          "use top_k >= 1 or leave it unset (off).");
  range(p, c.advantage.eps > 0, "advantage.eps", c.advantage.eps, "must be > 0", "use eps > 0 (default 1e-6).");
  range(p, c.loss.clip_low >= 0 && c.loss.clip_low < 1, "loss.clip_low", c.loss.clip_low,
        "must satisfy 0 <= clip_low < 1", "use 0 <= clip_low < 1 (default 0.2).");
  range(p, c.loss.clip_high >= 0, "loss.clip_high", c.loss.clip_high, "must be >= 0", "use clip_high >= 0.");
  range(p, c.loss.dual_clip_c == 0 || c.loss.dual_clip_c > 1, "loss.dual_clip_c", c.loss.dual_clip_c,
        "must be 0 (off) or > 1", "use 0 to disable the dual clip or a value > 1 (default 10).");
  range(p, c.loss.kl_coef >= 0, "loss.kl_coef", c.loss.kl_coef, "must be >= 0", "use kl_coef >= 0.");
  if (c.loss.kl_coef > 0 && !facts.has_reference_checkpoint)
    p.add("R2", fmt::format("[rl] loss.kl_coef = {} > 0 but no reference checkpoint is given.", c.loss.kl_coef),
          "set rl.reference to a checkpoint of the same model (e.g. the --init checkpoint), or kl_coef = 0.");
  range(p, c.loss.entropy_coef >= 0, "loss.entropy_coef", c.loss.entropy_coef,
        "must be >= 0 (a bonus rewards entropy; a negative one would punish it)",
        "use entropy_coef >= 0 (0 = off, as in every preset).");
  if (c.reward.overlong.enabled) {
    if (c.reward.overlong.buffer_tokens < 1 || c.reward.overlong.buffer_tokens > c.max_response_tokens)
      p.add("R3",
            fmt::format("[rl] reward.overlong.buffer_tokens = {} is outside [1, max_response_tokens = {}].",
                        c.reward.overlong.buffer_tokens, c.max_response_tokens),
            "use 1 <= buffer_tokens <= max_response_tokens, or set rl.reward.overlong.enabled = false.");
    range(p, c.reward.overlong.penalty_factor >= 0, "reward.overlong.penalty_factor", c.reward.overlong.penalty_factor,
          "must be >= 0", "use penalty_factor >= 0.");
  }
  if (c.reward.template_name != "dapo-math")
    p.add("V3", fmt::format("[rl] reward.template = \"{}\" is not one of dapo-math.", c.reward.template_name),
          "set rl.reward.template = \"dapo-math\".");
  if (c.chat_template != "model" && c.chat_template != "chatml" && c.chat_template != "llama3" &&
      c.chat_template != "plain")
    p.add("V3", fmt::format("[rl] chat_template = \"{}\" is not one of model, chatml, llama3, plain.", c.chat_template),
          "set rl.chat_template to model (the tokenizer directory's own template), chatml, llama3 or plain.");
  if (c.dynamic_sampling.gen_prompts_per_round)
    range(p, *c.dynamic_sampling.gen_prompts_per_round >= 1, "dynamic_sampling.gen_prompts_per_round",
          *c.dynamic_sampling.gen_prompts_per_round, "must be >= 1",
          "use gen_prompts_per_round >= 1 (default 3 * prompts_per_step).");
  range(p, c.hapo.entropy_pivot >= 0 && c.hapo.entropy_pivot <= 1, "hapo.entropy_pivot", c.hapo.entropy_pivot,
        "must satisfy 0 <= rho <= 1", "use 0 <= entropy_pivot <= 1 (default 0.8).");
  range(p, c.hapo.ats.tau >= 0 && c.hapo.ats.tau < 1, "hapo.ats.tau", c.hapo.ats.tau,
        "must satisfy 0 <= tau < 1 (the temperature must stay positive)", "use 0 <= tau < 1 (default 0.05).");
  range(p, c.hapo.dar.beta >= 0, "hapo.dar.beta", c.hapo.dar.beta, "must be >= 0", "use beta >= 0.");
  range(p, c.hapo.aac.alpha >= 0, "hapo.aac.alpha", c.hapo.aac.alpha, "must be >= 0", "use alpha >= 0.");
  range(p, c.optim.lr >= 0, "optim.lr", c.optim.lr, "must be >= 0", "use lr >= 0.");
  range(p, c.optim.warmup_steps >= 0, "optim.warmup_steps", c.optim.warmup_steps, "must be >= 0",
        "use warmup_steps >= 0 (0 = constant lr).");
  range(p, c.optim.weight_decay >= 0, "optim.weight_decay", c.optim.weight_decay, "must be >= 0",
        "use weight_decay >= 0.");
  if (std::isfinite(c.optim.beta1) && std::isfinite(c.optim.beta2) &&
      !(c.optim.beta1 >= 0 && c.optim.beta1 < 1 && c.optim.beta2 >= 0 && c.optim.beta2 < 1))
    p.add("V1", fmt::format("[rl] optim.betas = [{}, {}] must both lie in [0, 1).", c.optim.beta1, c.optim.beta2),
          "use betas in [0, 1), e.g. [0.9, 0.999].");
  range(p, c.optim.eps > 0, "optim.eps", c.optim.eps, "must be > 0", "use eps > 0 (default 1e-8).");
  range(p, c.optim.grad_clip >= 0, "optim.grad_clip", c.optim.grad_clip, "must be >= 0", "use grad_clip >= 0.");
  range(p, c.eval.every >= 1, "eval.every", c.eval.every, "must be >= 1", "use every >= 1.");
  range(p, c.eval.samples >= 1, "eval.samples", c.eval.samples, "must be >= 1", "use samples >= 1.");
  range(p, c.eval.temperature > 0, "eval.temperature", c.eval.temperature, "must be > 0",
        "use a positive temperature.");
  range(p, c.eval.top_p > 0 && c.eval.top_p <= 1, "eval.top_p", c.eval.top_p, "must satisfy 0 < top_p <= 1",
        "use 0 < top_p <= 1.");
  const RouterReplayMode replay = c.router_replay_mode(facts.model_is_moe);
  if (replay != RouterReplayMode::Off && !facts.model_is_moe)
    p.add("R4",
          fmt::format("[rl] router_replay.mode = {} needs an MoE model, but the model is dense.", to_string(replay)),
          "set rl.router_replay.mode = off (or auto) for dense models.");
  if (replay != RouterReplayMode::Off && facts.moe_has_capacity_factor)
    p.add("R5", "[rl] router replay requires dropless MoE but [moe] capacity_factor is set.",
          "unset moe.capacity_factor (dropless) or set rl.router_replay.mode = off.");
  // Every rank trains (minibatch_prompts · n) / DP responses of each mini-batch; equal shares keep
  // the ranks' collectives (expert dispatch, gradient reduction) in step.
  const int DP = std::max(1, facts.data_parallel);
  if ((c.minibatch_prompts * c.group_size) % DP != 0)
    p.add("R6",
          fmt::format("[rl] minibatch_prompts · group_size = {} · {} responses per mini-batch must be divisible by the "
                      "data-parallel size {}.",
                      c.minibatch_prompts, c.group_size, DP),
          fmt::format("choose minibatch_prompts and group_size whose product is a multiple of {}.", DP));
  // R7: a rollout is the prompt plus the response, and must fit the model's context.
  if (facts.max_seq_len > 0 && c.max_prompt_tokens >= 1 && c.max_response_tokens >= 1 &&
      (c.max_prompt_tokens > facts.max_seq_len || c.max_response_tokens > facts.max_seq_len - c.max_prompt_tokens))
    p.add("R7",
          fmt::format("[rl] max_prompt_tokens + max_response_tokens = {} + {} is longer than the model's context "
                      "[model] max_seq_len = {}.",
                      c.max_prompt_tokens, c.max_response_tokens, facts.max_seq_len),
          fmt::format("lower rl.max_response_tokens (or max_prompt_tokens) so that they sum to at most {}, or raise "
                      "model.max_seq_len.",
                      facts.max_seq_len));
  return p;
}

void validate_rl_config(const RlConfig& c, const RlRunFacts& facts) {
  rl_config_problems(c, facts).raise();
}

}  // namespace foldmoe::rl
