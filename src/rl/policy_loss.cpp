#include "rl/policy_loss.h"

#include "core/check.h"

namespace foldmoe::rl {

PolicyLossParams policy_loss_params(const RlConfig& c) {
  return PolicyLossParams{.eps_low = float(c.loss.clip_low),
                          .eps_high = float(c.loss.clip_high),
                          .dual_c = float(c.loss.dual_clip_c),
                          .aac = c.hapo.aac.enabled,
                          .alpha = float(c.hapo.aac.alpha),
                          .dar = c.hapo.dar.enabled,
                          .beta = float(c.hapo.dar.beta),
                          .kl_coef = float(c.loss.kl_coef)};
}

void PolicyLossCounters::add(const PolicyLossCounters& o) {
  tokens += o.tokens;
  clip_high += o.clip_high;
  clip_low += o.clip_low;
  clip_dual += o.clip_dual;
  clip_log_ratio += o.clip_log_ratio;
  neutral_zone += o.neutral_zone;
  dar_amplified += o.dar_amplified;
  dar_damped += o.dar_damped;
  hhat_nonpositive += o.hhat_nonpositive;
  sum_ratio += o.sum_ratio;
  sum_abs_log_ratio += o.sum_abs_log_ratio;
  sum_hhat += o.sum_hhat;
  sum_adv += o.sum_adv;
}

PolicyLossResult policy_loss(const PolicyLossInputs& in, const PolicyLossParams& p) {
  const size_t n = in.logp.size();
  FOLDMOE_CHECK(in.logp_old.size() == n && in.adv.size() == n && in.weight.size() == n,
                "policy_loss: logp {}, logp_old {}, adv {}, weight {} must have the same size", n,
                in.logp_old.size(), in.adv.size(), in.weight.size());
  FOLDMOE_CHECK(in.hhat.empty() || in.hhat.size() == n, "policy_loss: hhat size {} != {}", in.hhat.size(), n);
  FOLDMOE_CHECK(p.kl_coef == 0 || in.logp_ref.size() == n, "policy_loss: kl_coef > 0 needs logp_ref per token");
  PolicyLossResult out;
  out.dloss_dlogp.assign(n, 0.0f);
  auto& c = out.counters;
  for (size_t j = 0; j < n; ++j) {
    const float w = in.weight[j];
    if (w == 0) continue;
    const float g = in.hhat.empty() ? 0.0f : in.hhat[j];
    const HapoTokenLoss t =
        hapo_token_loss<float>(HapoTokenT<float>{in.logp[j], in.logp_old[j], in.adv[j], g}, p);
    float loss = t.loss, dlogp = t.dloss_dlogp;
    if (p.kl_coef > 0) {
      const auto kl = kl_k3<float>(in.logp[j], in.logp_ref[j], p.kl_coef);
      loss += kl.value;
      dlogp += kl.dvalue_dlogp;
    }
    out.loss += double(w) * double(loss);
    out.dloss_dlogp[j] = w * dlogp;
    ++c.tokens;
    c.clip_high += t.clip == ClipState::High;
    c.clip_low += t.clip == ClipState::Low;
    c.clip_dual += t.clip == ClipState::Dual;
    c.clip_log_ratio += t.clip == ClipState::LogRatio;
    c.neutral_zone += t.in_neutral_zone;
    c.dar_amplified += t.dar == DarEffect::Amplified;
    c.dar_damped += t.dar == DarEffect::Damped;
    c.hhat_nonpositive += g <= 0;
    c.sum_ratio += t.ratio;
    c.sum_abs_log_ratio += std::abs(double(in.logp[j]) - double(in.logp_old[j]));
    c.sum_hhat += g;
    c.sum_adv += t.adv;
  }
  return out;
}

}  // namespace foldmoe::rl
