#include "rl/rollout_split.h"

#include "core/check.h"

namespace foldmoe::rl {

std::vector<Response> generate_split(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                                     const SamplingParams& sampling, const RolloutOptions& opt, Communicator& dp) {
  const int DP = dp.size(), d = dp.rank();
  if (DP == 1) return generate(model, prompts, sampling, opt);
  const size_t n = size_t(opt.samples_per_prompt);
  std::vector<std::vector<int32_t>> mine;
  RolloutOptions o = opt;
  o.prompt_ids.clear();
  for (size_t p = size_t(d); p < prompts.size(); p += size_t(DP)) {
    mine.push_back(prompts[p]);
    o.prompt_ids.push_back(opt.prompt_ids.empty() ? int64_t(p) : opt.prompt_ids[p]);
  }
  std::vector<Response> local = generate(model, mine, sampling, o);
  std::vector<Response> out(prompts.size() * n);
  for (Response& r : local) {
    const size_t p = size_t(r.prompt) * size_t(DP) + size_t(d);
    r.prompt = int64_t(p);
    out[p * n + size_t(r.sample)] = std::move(r);
  }
  for (size_t i = 0; i < out.size(); ++i) {
    out[i].prompt = int64_t(i / n);
    out[i].sample = int(i % n);
  }
  auto owned = [&](size_t i) { return int((i / n) % size_t(DP)) == d; };

  // Phase 1: lengths, finish reasons and router-record lengths (owners write, the rest 0: exact).
  std::vector<double> meta(out.size() * 3, 0.0);
  for (size_t i = 0; i < out.size(); ++i)
    if (owned(i)) {
      meta[3 * i] = double(out[i].tokens.size());
      meta[3 * i + 1] = out[i].finish == FinishReason::Eos ? 1.0 : 0.0;
      meta[3 * i + 2] = double(out[i].routing.size());
    }
  dp.all_reduce(meta.data(), int64_t(meta.size()));
  // Phase 2: per response tokens (ids < 2^24, exact in fp32), log-probs, temperatures, records
  // (id + 1, so that "route live" = -1 travels as 0 like the absent values).
  size_t total = 0;
  for (size_t i = 0; i < out.size(); ++i) total += 3 * size_t(meta[3 * i]) + size_t(meta[3 * i + 2]);
  std::vector<float> flat(total, 0.0f);
  size_t o2 = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t L = size_t(meta[3 * i]), LR = size_t(meta[3 * i + 2]);
    if (owned(i)) {
      const Response& r = out[i];
      for (size_t t = 0; t < L; ++t) {
        flat[o2 + t] = float(r.tokens[t]);
        flat[o2 + L + t] = r.logprob_policy[t];
        flat[o2 + 2 * L + t] = r.temperature[t];
      }
      for (size_t t = 0; t < LR; ++t) flat[o2 + 3 * L + t] = float(r.routing[t] + 1);
    }
    o2 += 3 * L + LR;
  }
  dp.all_reduce(flat.data(), int64_t(flat.size()));
  o2 = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const size_t L = size_t(meta[3 * i]), LR = size_t(meta[3 * i + 2]);
    Response& r = out[i];
    if (!owned(i)) {
      r.tokens.resize(L);
      r.logprob_policy.assign(flat.begin() + int64_t(o2 + L), flat.begin() + int64_t(o2 + 2 * L));
      r.temperature.assign(flat.begin() + int64_t(o2 + 2 * L), flat.begin() + int64_t(o2 + 3 * L));
      for (size_t t = 0; t < L; ++t) r.tokens[t] = int32_t(flat[o2 + t]);
      r.routing.resize(LR);
      for (size_t t = 0; t < LR; ++t) r.routing[t] = int32_t(flat[o2 + 3 * L + t]) - 1;
      r.finish = meta[3 * i + 1] > 0 ? FinishReason::Eos : FinishReason::Length;
    }
    r.logprob_sample.clear();
    r.entropy.clear();
    o2 += 3 * L + LR;
  }
  return out;
}

}  // namespace foldmoe::rl
