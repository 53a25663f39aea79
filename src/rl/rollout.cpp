#include "rl/rollout.h"

#include <algorithm>
#include <cstring>

#include "core/check.h"
#include "rl/kv_cache.h"

namespace foldmoe::rl {

const char* finish_reason_name(FinishReason r) { return r == FinishReason::Eos ? "eos" : "length"; }

namespace {
struct Active {
  size_t resp;  // index into the output
  int slot;
  int32_t next;  // last sampled token, to feed
};
}  // namespace

std::vector<Response> generate(Model& model, const std::vector<std::vector<int32_t>>& prompts,
                               const SamplingParams& sampling, const RolloutOptions& opt) {
  FOLDMOE_CHECK(opt.samples_per_prompt >= 1, "samples_per_prompt = {}", opt.samples_per_prompt);
  FOLDMOE_CHECK(opt.prompt_ids.empty() || opt.prompt_ids.size() == prompts.size(), "prompt_ids size mismatch");
  for (const auto& p : prompts)
    if (p.empty()) user_error("rollout: empty prompt (prepend <bos>)");
  const int n = opt.samples_per_prompt;
  std::vector<Response> out(prompts.size() * size_t(n));
  if (prompts.empty() && !opt.lockstep) return out;
  DecoderEngine eng(model);
  const int64_t V = eng.vocab(), LK = int64_t(eng.moe_layers()) * eng.topk();
  const bool rec = opt.record_routing && LK > 0;
  const int max_batch = opt.max_batch > 0 ? std::max(opt.max_batch, n) : int(out.size());
  auto pid = [&](size_t p) { return opt.prompt_ids.empty() ? int64_t(p) : opt.prompt_ids[p]; };

  TokenSampler sampler;
  // Samples token j of response r from logits; returns true if the response is finished.
  auto draw = [&](Response& r, const float* logits) {
    const int64_t j = int64_t(r.tokens.size());
    const double u = sampling_uniform(opt.seed, opt.step, pid(size_t(r.prompt)), r.sample, j);
    const TokenDraw d = sampler.draw(logits, V, sampling, u);
    r.tokens.push_back(d.token);
    r.logprob_sample.push_back(d.logprob_sample);
    r.logprob_policy.push_back(d.logprob_policy);
    r.entropy.push_back(d.entropy);
    r.temperature.push_back(d.temperature);
    if (d.token == opt.eos_id || std::find(opt.stop_ids.begin(), opt.stop_ids.end(), d.token) != opt.stop_ids.end()) {
      r.finish = FinishReason::Eos;
      return true;
    }
    if (int64_t(r.tokens.size()) >= opt.max_new_tokens) {
      r.finish = FinishReason::Length;
      return true;
    }
    return false;
  };
  auto finish = [&](Response& r) {
    if (rec) r.routing.resize(r.routing.size() + size_t(LK), -1);  // the last token: never fed
  };

  std::vector<Active> active;
  std::vector<float> logits;
  std::vector<int32_t> routing;
  size_t next_prompt = 0;
  // Whether any member of the lock-step group (or this process alone) has each kind of work.
  auto any = [&](bool mine) {
    double v = mine ? 1.0 : 0.0;
    if (opt.lockstep) opt.lockstep->all_reduce(&v, 1, ReduceOp::Max);
    return v > 0;
  };
  for (;;) {
    const bool work = next_prompt < prompts.size() || !active.empty();
    // Admit prompts while the batch has room: one batched prefill, then fork into n samples.
    std::vector<size_t> admit;
    while (next_prompt < prompts.size() && (active.size() + (admit.size() + 1) * size_t(n) <= size_t(max_batch) ||
                                            (active.empty() && admit.empty())))
      admit.push_back(next_prompt++);
    if (!any(work)) break;
    if (any(!admit.empty())) {
      std::vector<DecoderEngine::Feed> feeds;
      for (size_t p : admit)
        feeds.push_back({eng.new_sequence(int64_t(prompts[p].size()) + opt.max_new_tokens), prompts[p]});
      eng.extend(feeds, logits, false, rec ? &routing : nullptr);
      int64_t row0 = 0;
      for (size_t a = 0; a < admit.size(); ++a) {
        const size_t p = admit[a];
        const int64_t P = int64_t(prompts[p].size());
        for (int s = 0; s < n; ++s) {
          Response& r = out[p * size_t(n) + size_t(s)];
          r.prompt = int64_t(p);
          r.sample = s;
          if (rec) r.routing.assign(routing.begin() + row0 * LK, routing.begin() + (row0 + P) * LK);
          const int slot = s + 1 < n ? eng.fork_sequence(feeds[a].slot) : feeds[a].slot;
          if (opt.max_new_tokens <= 0) {
            r.finish = FinishReason::Length;
            eng.free_sequence(slot);
            continue;
          }
          if (draw(r, logits.data() + int64_t(a) * V)) {
            finish(r);
            eng.free_sequence(slot);
          } else {
            active.push_back({p * size_t(n) + size_t(s), slot, r.tokens.back()});
          }
        }
        row0 += P;
      }
    }
    if (!any(!active.empty())) continue;
    // One decode step over every active sequence.
    std::vector<DecoderEngine::Feed> feeds;
    feeds.reserve(active.size());
    for (const Active& a : active) feeds.push_back({a.slot, std::span<const int32_t>(&a.next, 1)});
    eng.extend(feeds, logits, false, rec ? &routing : nullptr);
    std::vector<Active> still;
    for (size_t i = 0; i < active.size(); ++i) {
      Response& r = out[active[i].resp];
      if (rec) r.routing.insert(r.routing.end(), routing.begin() + int64_t(i) * LK, routing.begin() + int64_t(i + 1) * LK);
      if (draw(r, logits.data() + int64_t(i) * V)) {
        finish(r);
        eng.free_sequence(active[i].slot);
      } else {
        still.push_back({active[i].resp, active[i].slot, r.tokens.back()});
      }
    }
    active = std::move(still);
  }
  return out;
}

}  // namespace foldmoe::rl
