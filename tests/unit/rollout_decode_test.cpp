// KV-cache inference (src/rl/kv_cache.h) and rollout generation (src/rl/rollout.h) against the
// training forward: prefill + decode logits, sampled / greedy responses' log-probs, entropies and
// router records, ragged batches, and independence of batch composition.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "comm/process_groups.h"
#include "rl/kv_cache.h"
#include "rl/rollout.h"
#include "rollout_test_util.h"

using namespace foldmoe;
using namespace foldmoe::test;

namespace {

std::unique_ptr<Model> make_model(const std::string& kind) {
  auto m = std::make_unique<Model>(rollout_config(kind), ProcessGroups::single_process());
  // A non-zero selection bias, so that the bias path of the router is exercised too.
  for (MoELayer* l : m->moe_layers()) {
    std::vector<float>& b = l->expert_bias();
    for (size_t e = 0; e < b.size(); ++e) b[e] = 0.05f * float(int(e % 3) - 1);
  }
  // Biases start at zero and QK-norm weights at one: move them, so that the engine's use of them
  // shows in the logits.
  ParamArena& d = m->dense();
  for (int i = 0; i < d.size(); ++i) {
    const std::string& name = d.spec(i).name;
    const bool bias = name.ends_with("_bias"), norm = name.ends_with("q_norm") || name.ends_with("k_norm");
    if (!bias && !norm) continue;
    float* w = d.params() + d.offset(i);
    for (int64_t j = 0; j < Param{&d, i}.numel(); ++j)
      w[j] = bias ? 0.3f * std::sin(float(j + 3 * i)) : 1.0f + 0.4f * std::cos(float(j + i));
  }
  return m;
}

class RolloutKinds : public ::testing::TestWithParam<std::string> {};

// Ragged prefill (different prompt lengths in one call) then batched one-token decode steps equal
// the full teacher-forced forward at every position.
TEST_P(RolloutKinds, PrefillPlusDecodeEqualsFullForward) {
  auto model = make_model(GetParam());
  const int64_t V = model->config().model.vocab;
  const std::vector<int64_t> len = {9, 13, 5}, split = {3, 8, 1};
  std::vector<std::vector<int32_t>> seqs;
  for (size_t i = 0; i < len.size(); ++i) seqs.push_back(random_tokens(len[i], V, 100 + i));
  rl::DecoderEngine eng(*model);
  std::vector<int> slot;
  std::vector<std::vector<float>> got(seqs.size());  // logits of every position, in order
  std::vector<rl::DecoderEngine::Feed> feeds;
  for (size_t i = 0; i < seqs.size(); ++i) {
    slot.push_back(eng.new_sequence());
    feeds.push_back({slot[i], std::span<const int32_t>(seqs[i].data(), size_t(split[i]))});
  }
  std::vector<float> logits;
  eng.extend(feeds, logits, /*all_logits=*/true);
  int64_t row = 0;
  for (size_t i = 0; i < seqs.size(); ++i) {
    got[i].insert(got[i].end(), logits.begin() + row * V, logits.begin() + (row + split[i]) * V);
    row += split[i];
  }
  for (int64_t t = 1; t < 13; ++t) {
    feeds.clear();
    std::vector<size_t> who;
    for (size_t i = 0; i < seqs.size(); ++i) {
      const int64_t p = split[i] + t - 1;
      if (p < len[i]) {
        feeds.push_back({slot[i], std::span<const int32_t>(seqs[i].data() + p, 1)});
        who.push_back(i);
      }
    }
    if (feeds.empty()) break;
    eng.extend(feeds, logits);
    for (size_t j = 0; j < who.size(); ++j)
      got[who[j]].insert(got[who[j]].end(), logits.begin() + int64_t(j) * V, logits.begin() + int64_t(j + 1) * V);
  }
  for (size_t i = 0; i < seqs.size(); ++i) {
    EXPECT_EQ(eng.length(slot[i]), len[i]);
    const std::vector<float> ref = reference_logits(*model, seqs[i]);
    ASSERT_EQ(got[i].size(), ref.size());
    const double scale = max_abs(ref.data(), ref.size());
    ASSERT_GT(scale, 0.1);
    for (size_t e = 0; e < ref.size(); ++e)
      ASSERT_NEAR(got[i][e], ref[e], 1e-5 * scale) << "seq " << i << " position " << e / size_t(V);
  }
}

// Sampled and greedy responses: log-probs (policy and sampling), entropies, greedy choices and
// router records agree with the teacher-forced forward over prompt + response.
TEST_P(RolloutKinds, GenerationMatchesTeacherForcedForward) {
  auto model = make_model(GetParam());
  const int64_t V = model->config().model.vocab;
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(4, V, 1), random_tokens(9, V, 2),
                                                     random_tokens(1, V, 3)};
  for (int mode = 0; mode < 2; ++mode) {
    rl::SamplingParams sp;
    if (mode == 0) {
      sp.temperature = 0.8f, sp.top_k = 12, sp.top_p = 0.95f;
    } else {
      sp.greedy = true;
    }
    rl::RolloutOptions opt;
    opt.max_new_tokens = 10;
    opt.samples_per_prompt = 2;
    opt.seed = 11;
    opt.eos_id = 5;
    const std::vector<rl::Response> out = rl::generate(*model, prompts, sp, opt);
    ASSERT_EQ(out.size(), 6u);
    int eos = 0;
    for (const rl::Response& r : out) {
      const std::vector<int32_t>& p = prompts[size_t(r.prompt)];
      const int64_t P = int64_t(p.size()), L = int64_t(r.tokens.size());
      ASSERT_GE(L, 1);
      if (r.finish == rl::FinishReason::Eos) {
        ++eos;
        EXPECT_EQ(r.tokens.back(), 5);
      } else {
        EXPECT_EQ(L, 10);
      }
      for (int64_t j = 0; j + 1 < L; ++j) EXPECT_NE(r.tokens[size_t(j)], 5);
      std::vector<int32_t> seq = p;
      seq.insert(seq.end(), r.tokens.begin(), r.tokens.end());
      std::vector<int32_t> routing;
      const std::vector<float> ref = reference_logits(*model, seq, &routing);
      for (int64_t j = 0; j < L; ++j) {
        const float* z = ref.data() + (P - 1 + j) * V;
        double mx = -1e30;
        for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(z[v]));
        double s = 0, sz = 0;
        for (int64_t v = 0; v < V; ++v) s += std::exp(double(z[v]) - mx), sz += std::exp(double(z[v]) - mx) * (z[v] - mx);
        const double lse = mx + std::log(s);
        const int32_t tok = r.tokens[size_t(j)];
        EXPECT_NEAR(r.logprob_policy[size_t(j)], double(z[tok]) - lse, 1e-5 * std::max(1.0, std::abs(z[tok] - lse)));
        EXPECT_NEAR(r.entropy[size_t(j)], std::log(s) - sz / s, 1e-5);
        if (sp.greedy) {
          EXPECT_EQ(tok, int32_t(std::max_element(z, z + V) - z));
          EXPECT_EQ(r.logprob_sample[size_t(j)], 0.0f);
        } else {
          const std::vector<double> q = rl::sampling_distribution(z, V, sp.temperature, sp.top_k, sp.top_p);
          ASSERT_GT(q[size_t(tok)], 0.0) << "sampled a token outside the top-k/top-p set";
          EXPECT_NEAR(r.logprob_sample[size_t(j)], std::log(q[size_t(tok)]), 1e-4);
        }
      }
      // Router records: every fed token (all but the last) as in the teacher-forced forward.
      const int64_t LK = int64_t(model->num_moe_layers()) * model->config().moe.topk;
      ASSERT_EQ(int64_t(r.routing.size()), (P + L) * LK);
      for (int64_t i = 0; i < (P + L - 1) * LK; ++i) ASSERT_EQ(r.routing[size_t(i)], routing[size_t(i)]) << i;
      for (int64_t i = (P + L - 1) * LK; i < (P + L) * LK; ++i) EXPECT_EQ(r.routing[size_t(i)], -1);
    }
    (void)eos;
  }
}

// The same prompts generated together, in a smaller rolling batch, or one by one (with the same
// prompt ids) give the same tokens: draws are keyed by (seed, step, prompt id, sample, position).
TEST_P(RolloutKinds, IndependentOfBatchComposition) {
  auto model = make_model(GetParam());
  const int64_t V = model->config().model.vocab;
  const std::vector<std::vector<int32_t>> prompts = {random_tokens(3, V, 21), random_tokens(7, V, 22),
                                                     random_tokens(5, V, 23), random_tokens(2, V, 24)};
  rl::SamplingParams sp;
  sp.temperature = 1.2f;
  rl::RolloutOptions opt;
  opt.max_new_tokens = 12;
  opt.samples_per_prompt = 3;
  opt.seed = 5;
  opt.step = 3;
  opt.eos_id = 7;
  const std::vector<rl::Response> all = rl::generate(*model, prompts, sp, opt);
  rl::RolloutOptions rolling = opt;
  rolling.max_batch = 4;
  const std::vector<rl::Response> roll = rl::generate(*model, prompts, sp, rolling);
  for (size_t p = 0; p < prompts.size(); ++p) {
    rl::RolloutOptions one = opt;
    one.prompt_ids = {int64_t(p)};
    const std::vector<rl::Response> single = rl::generate(*model, {prompts[p]}, sp, one);
    for (int s = 0; s < 3; ++s) {
      const rl::Response& a = all[p * 3 + size_t(s)];
      for (const rl::Response* b : {&roll[p * 3 + size_t(s)], &single[size_t(s)]}) {
        ASSERT_EQ(a.tokens, b->tokens) << "prompt " << p << " sample " << s;
        EXPECT_EQ(a.finish, b->finish);
        EXPECT_EQ(a.routing, b->routing);
        for (size_t j = 0; j < a.tokens.size(); ++j) EXPECT_NEAR(a.logprob_policy[j], b->logprob_policy[j], 1e-5);
      }
    }
  }
  // Different samples of one prompt differ (n = 3 draws of 12 tokens from a 40-token vocabulary).
  EXPECT_NE(all[0].tokens, all[1].tokens);
  // Another step draws differently.
  rl::RolloutOptions other = opt;
  other.step = 4;
  EXPECT_NE(rl::generate(*model, prompts, sp, other)[0].tokens, all[0].tokens);
}

// bf16 (docs/precision.md): prefill + decode round the operands of their products like the
// training forward does (scaled queries, unnormalised probabilities), so the decoder follows the
// bf16 forward to fp32 round-off plus the odd operand that rounds to the other bf16 neighbour, and
// is far closer to it than to the fp32 forward.
TEST(RolloutBf16, PrefillPlusDecodeFollowsTheBf16Forward) {
  for (const std::string kind : {"moe", "hf-qwen3"}) {
    auto fp32 = make_model(kind);
    Config c = rollout_config(kind);
    c.train.precision = "bf16";
    auto bf16 = std::make_unique<Model>(c, ProcessGroups::single_process());
    std::copy(fp32->dense().params(), fp32->dense().params() + fp32->dense().total(), bf16->dense().params());
    std::copy(fp32->expert().params(), fp32->expert().params() + fp32->expert().total(), bf16->expert().params());
    auto fp32_moes = fp32->moe_layers(), bf16_moes = bf16->moe_layers();
    for (size_t l = 0; l < fp32_moes.size(); ++l) bf16_moes[l]->expert_bias() = fp32_moes[l]->expert_bias();
    const int64_t V = c.model.vocab, L = 12, split = 5;
    const std::vector<int32_t> seq = random_tokens(L, V, 321);
    rl::DecoderEngine eng(*bf16);
    const int slot = eng.new_sequence();
    std::vector<float> got, logits;
    std::vector<rl::DecoderEngine::Feed> feed = {{slot, std::span<const int32_t>(seq.data(), size_t(split))}};
    eng.extend(feed, got, /*all_logits=*/true);
    for (int64_t p = split; p < L; ++p) {
      feed = {{slot, std::span<const int32_t>(seq.data() + p, 1)}};
      eng.extend(feed, logits);
      got.insert(got.end(), logits.begin(), logits.begin() + V);
    }
    const std::vector<float> ref_bf16 = reference_logits(*bf16, seq), ref_fp32 = reference_logits(*fp32, seq);
    ASSERT_EQ(got.size(), ref_bf16.size());
    const double scale = max_abs(ref_bf16.data(), ref_bf16.size());
    double to_bf16 = 0, to_fp32 = 0;
    for (size_t e = 0; e < got.size(); ++e) {
      to_bf16 = std::max(to_bf16, double(std::abs(got[e] - ref_bf16[e])));
      to_fp32 = std::max(to_fp32, double(std::abs(got[e] - ref_fp32[e])));
    }
    EXPECT_LT(to_bf16, 2e-3 * scale) << kind;
    EXPECT_GT(to_fp32, 3 * to_bf16) << kind;
  }
}

INSTANTIATE_TEST_SUITE_P(Kinds, RolloutKinds,
                         ::testing::Values("dense", "moe", "moe-sigmoid", "moe-group", "hf-qwen3", "hf-olmoe"),
                         [](const auto& info) {
                           std::string s = info.param;
                           for (char& ch : s)
                             if (ch == '-') ch = '_';
                           return s;
                         });

}  // namespace
