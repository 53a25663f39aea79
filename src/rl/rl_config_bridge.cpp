#include "rl/rl_config_bridge.h"

#include "core/check.h"

namespace foldmoe::rl {

RlConfig rl_config_from(const RlSection& s) {
  RlConfig c;
  c.preset = parse_rl_preset(s.preset);
  c.prompts_per_step = s.prompts_per_step;
  c.group_size = s.group_size;
  c.minibatch_prompts = s.minibatch_prompts;
  c.ppo_epochs = s.ppo_epochs;
  c.max_prompt_tokens = s.max_prompt_tokens;
  c.max_response_tokens = s.max_response_tokens;
  c.seed = s.seed;
  c.rollout.temperature = s.rollout_temperature;
  c.rollout.top_p = s.rollout_top_p;
  c.rollout.top_k = s.rollout_top_k;
  c.advantage.estimator = parse_advantage_estimator(s.advantage_estimator);
  c.advantage.eps = s.advantage_eps;
  c.advantage.norm_by_std = s.advantage_norm_by_std;
  c.advantage.tlga_fallback_threshold = s.advantage_tlga_fallback_threshold;
  c.advantage.tlga_fallback_scope = parse_tlga_fallback_scope(s.advantage_tlga_fallback_scope);
  c.loss.clip_low = s.loss_clip_low;
  c.loss.clip_high = s.loss_clip_high;
  c.loss.dual_clip_c = s.loss_dual_clip_c;
  c.loss.aggregation = parse_loss_aggregation(s.loss_aggregation);
  c.loss.kl_coef = s.loss_kl_coef;
  c.loss.entropy_coef = s.loss_entropy_coef;
  c.reward.overlong.enabled = s.reward_overlong_enabled;
  c.reward.overlong.buffer_tokens = s.reward_overlong_buffer_tokens;
  c.reward.overlong.penalty_factor = s.reward_overlong_penalty_factor;
  c.reward.equivalence_fallback = parse_equivalence_fallback(s.reward_equivalence_fallback);
  c.reward.template_name = s.reward_template;
  c.dapo.overlong_filter = s.dapo_overlong_filter;
  c.dynamic_sampling.enabled = s.dynamic_sampling_enabled;
  if (s.dynamic_sampling_gen_prompts_per_round)
    c.dynamic_sampling.gen_prompts_per_round = int64_t(*s.dynamic_sampling_gen_prompts_per_round);
  c.dynamic_sampling.metric = parse_dynamic_sampling_metric(s.dynamic_sampling_metric);
  c.dynamic_sampling.max_rounds = s.dynamic_sampling_max_rounds;
  c.hapo.hhat_sign = parse_hhat_sign(s.hapo_hhat_sign);
  c.hapo.hhat_scope = parse_hhat_scope(s.hapo_hhat_scope);
  c.hapo.entropy_pivot = s.hapo_entropy_pivot;
  c.hapo.ats.enabled = s.hapo_ats_enabled;
  c.hapo.ats.tau = s.hapo_ats_tau;
  c.hapo.dar.enabled = s.hapo_dar_enabled;
  c.hapo.dar.beta = s.hapo_dar_beta;
  c.hapo.aac.enabled = s.hapo_aac_enabled;
  c.hapo.aac.alpha = s.hapo_aac_alpha;
  c.optim.lr = s.optim_lr;
  c.optim.warmup_steps = s.optim_warmup_steps;
  c.optim.weight_decay = s.optim_weight_decay;
  if (s.optim_betas.size() != 2)
    user_error("config error rl.optim.betas: expected two values [beta1, beta2], got {}\n  fix: set "
               "rl.optim.betas = [0.9, 0.999]",
               s.optim_betas.size());
  c.optim.beta1 = s.optim_betas[0];
  c.optim.beta2 = s.optim_betas[1];
  c.optim.eps = s.optim_eps;
  c.optim.grad_clip = s.optim_grad_clip;
  c.eval.before_train = s.eval_before_train;
  c.eval.every = s.eval_every;
  c.eval.samples = s.eval_samples;
  c.eval.temperature = s.eval_temperature;
  c.eval.top_p = s.eval_top_p;
  if (s.router_replay_mode != "auto")
    c.router_replay.mode = parse_router_replay_mode(s.router_replay_mode);
  c.router_replay.freeze_expert_bias = s.router_replay_freeze_expert_bias;
  return c;
}

void store_rl_config(const RlConfig& c, RlSection& s) {
  s.preset = std::string(to_string(c.preset));
  s.prompts_per_step = c.prompts_per_step;
  s.group_size = c.group_size;
  s.minibatch_prompts = c.minibatch_prompts;
  s.ppo_epochs = c.ppo_epochs;
  s.max_prompt_tokens = c.max_prompt_tokens;
  s.max_response_tokens = c.max_response_tokens;
  s.seed = c.seed;
  s.rollout_temperature = c.rollout.temperature;
  s.rollout_top_p = c.rollout.top_p;
  s.rollout_top_k = c.rollout.top_k;
  s.advantage_estimator = std::string(to_string(c.advantage.estimator));
  s.advantage_eps = c.advantage.eps;
  s.advantage_norm_by_std = c.advantage.norm_by_std;
  s.advantage_tlga_fallback_threshold = c.advantage.tlga_fallback_threshold;
  s.advantage_tlga_fallback_scope = std::string(to_string(c.advantage.tlga_fallback_scope));
  s.loss_clip_low = c.loss.clip_low;
  s.loss_clip_high = c.loss.clip_high;
  s.loss_dual_clip_c = c.loss.dual_clip_c;
  s.loss_aggregation = std::string(to_string(c.loss.aggregation));
  s.loss_kl_coef = c.loss.kl_coef;
  s.loss_entropy_coef = c.loss.entropy_coef;
  s.reward_overlong_enabled = c.reward.overlong.enabled;
  s.reward_overlong_buffer_tokens = c.reward.overlong.buffer_tokens;
  s.reward_overlong_penalty_factor = c.reward.overlong.penalty_factor;
  s.reward_equivalence_fallback = std::string(to_string(c.reward.equivalence_fallback));
  s.reward_template = c.reward.template_name;
  s.dapo_overlong_filter = c.dapo.overlong_filter;
  s.dynamic_sampling_enabled = c.dynamic_sampling.enabled;
  s.dynamic_sampling_gen_prompts_per_round.reset();
  if (c.dynamic_sampling.gen_prompts_per_round)
    s.dynamic_sampling_gen_prompts_per_round = int(*c.dynamic_sampling.gen_prompts_per_round);
  s.dynamic_sampling_metric = std::string(to_string(c.dynamic_sampling.metric));
  s.dynamic_sampling_max_rounds = c.dynamic_sampling.max_rounds;
  s.hapo_hhat_sign = std::string(to_string(c.hapo.hhat_sign));
  s.hapo_hhat_scope = std::string(to_string(c.hapo.hhat_scope));
  s.hapo_entropy_pivot = c.hapo.entropy_pivot;
  s.hapo_ats_enabled = c.hapo.ats.enabled;
  s.hapo_ats_tau = c.hapo.ats.tau;
  s.hapo_dar_enabled = c.hapo.dar.enabled;
  s.hapo_dar_beta = c.hapo.dar.beta;
  s.hapo_aac_enabled = c.hapo.aac.enabled;
  s.hapo_aac_alpha = c.hapo.aac.alpha;
  s.optim_lr = c.optim.lr;
  s.optim_warmup_steps = c.optim.warmup_steps;
  s.optim_weight_decay = c.optim.weight_decay;
  s.optim_betas = {c.optim.beta1, c.optim.beta2};
  s.optim_eps = c.optim.eps;
  s.optim_grad_clip = c.optim.grad_clip;
  s.eval_before_train = c.eval.before_train;
  s.eval_every = c.eval.every;
  s.eval_samples = c.eval.samples;
  s.eval_temperature = c.eval.temperature;
  s.eval_top_p = c.eval.top_p;
  s.router_replay_mode = c.router_replay.mode ? std::string(to_string(*c.router_replay.mode)) : "auto";
  s.router_replay_freeze_expert_bias = c.router_replay.freeze_expert_bias;
}

void apply_rl_preset_section(RlSection& s) {
  const RlPreset p = parse_rl_preset(s.preset);
  // Only the preset-controlled fields change; enums of other fields may still hold a bad spelling
  // here, so round-trip through a config built from the preset and copy the controlled fields.
  RlConfig c = rl_preset_config(p);
  RlSection out = s;
  store_rl_config(c, out);
  // Fields no preset controls keep the section's values.
  out.prompts_per_step = s.prompts_per_step;
  out.group_size = s.group_size;
  out.minibatch_prompts = s.minibatch_prompts;
  out.ppo_epochs = s.ppo_epochs;
  out.max_prompt_tokens = s.max_prompt_tokens;
  out.max_response_tokens = s.max_response_tokens;
  out.seed = s.seed;
  out.rollout_temperature = s.rollout_temperature;
  out.rollout_top_p = s.rollout_top_p;
  out.rollout_top_k = s.rollout_top_k;
  out.reward_overlong_buffer_tokens = s.reward_overlong_buffer_tokens;
  out.reward_overlong_penalty_factor = s.reward_overlong_penalty_factor;
  out.reward_template = s.reward_template;
  out.dapo_overlong_filter = s.dapo_overlong_filter;
  out.dynamic_sampling_gen_prompts_per_round = s.dynamic_sampling_gen_prompts_per_round;
  out.optim_lr = s.optim_lr;
  out.optim_warmup_steps = s.optim_warmup_steps;
  out.optim_weight_decay = s.optim_weight_decay;
  out.optim_betas = s.optim_betas;
  out.optim_eps = s.optim_eps;
  out.optim_grad_clip = s.optim_grad_clip;
  out.eval_before_train = s.eval_before_train;
  out.eval_every = s.eval_every;
  out.eval_samples = s.eval_samples;
  out.eval_temperature = s.eval_temperature;
  out.eval_top_p = s.eval_top_p;
  out.router_replay_mode = s.router_replay_mode;
  out.router_replay_freeze_expert_bias = s.router_replay_freeze_expert_bias;
  s = out;
}

}  // namespace foldmoe::rl
