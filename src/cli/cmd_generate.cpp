// `foldmoe generate --checkpoint DIR --prompt TEXT`: sampled (or greedy) continuations of a prompt
// with the KV-cache rollout engine (src/rl).
#include <algorithm>
#include <cstdio>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "cli/option_checks.h"
#include "config/toml_reader.h"
#include "config/validate.h"
#include "core/check.h"
#include "core/timer.h"
#include "data/data_source.h"
#include "hf/hf_weights.h"
#include "rl/rollout.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace foldmoe::cli {

namespace {
struct GenerateArgs {
  std::string dir, prompt, prompt_ids;
  int max_new = 64, top_k = 0, samples = 1;
  double temperature = 1.0, top_p = 1.0;
  int64_t seed = 0;
  bool json = false, ignore_eos = false;
};

// --prompt-ids "1,17,42": the ids as given (nothing prepended).
std::vector<int32_t> parse_prompt_ids(const std::string& text) {
  std::vector<int32_t> ids;
  size_t at = 0;
  while (at <= text.size()) {
    const size_t comma = std::min(text.find(',', at), text.size());
    const std::string word = text.substr(at, comma - at);
    size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != word.size() || v < 0 || v > std::numeric_limits<int32_t>::max())
      user_error("--prompt-ids: '{}' is not a token id; write comma-separated non-negative integers, e.g. 1,17,42",
                 word);
    ids.push_back(int32_t(v));
    at = comma + 1;
  }
  return ids;
}
}  // namespace

void register_generate(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("generate", "Generate continuations of a prompt from a checkpoint");
  auto a = std::make_shared<GenerateArgs>();
  sub->add_option(
         "--checkpoint", a->dir,
         "Checkpoint: a run directory (its latest complete checkpoint), its checkpoints/ directory or one "
         "…/checkpoints/step-NNNNNNNN, or a Hugging Face model directory (its config.json, safetensors and tokenizer)")
      ->required();
  CLI::Option* prompt =
      sub->add_option("--prompt", a->prompt, "Prompt text (<bos> is prepended), e.g. \"add:12+345=\"");
  CLI::Option* prompt_ids =
      sub->add_option("--prompt-ids", a->prompt_ids,
                      "Prompt token ids, comma-separated, used as given (nothing prepended), e.g. 1,17,42");
  prompt->excludes(prompt_ids);
  sub->add_flag("--ignore-eos", a->ignore_eos, "Do not stop at the end-of-text token: always --max-new tokens");
  sub->add_option("--max-new", a->max_new, "Maximum new tokens per continuation (default 64)")
      ->check(integer_at_least("--max-new", 1, "64"));
  sub->add_option("--temperature", a->temperature, "Sampling temperature; 0 = greedy (default 1)")
      ->check(real_in("--temperature", {.lo = 0}, "0.8"));
  sub->add_option("--top-p", a->top_p, "Nucleus sampling mass in (0, 1] (default 1 = off)")
      ->check(real_in("--top-p", {.lo = 0, .lo_open = true, .hi = 1}, "0.9"));
  sub->add_option("--top-k", a->top_k, "Keep the k most likely tokens (default 0 = off)")
      ->check(integer_at_least("--top-k", 0, "20"));
  sub->add_option("--samples", a->samples, "Continuations to sample (default 1)")
      ->check(integer_at_least("--samples", 1, "4"));
  sub->add_option("--seed", a->seed, "Sampling seed (default 0)")->check(any_integer("--seed", "7"));
  sub->add_flag("--json", a->json, "Also print one JSON line per continuation (tokens, log-probs, entropies)");
  set_action(sub, [a] {
    if (a->prompt.empty() && a->prompt_ids.empty())  // first: before the checkpoint is looked at
      user_error(
          "`foldmoe generate` needs --prompt (or --prompt-ids).\n  fix: add --prompt VALUE, or --prompt-ids "
          "1,17,42 (token ids)");
    const ModelSource source = model_source(a->dir, "--checkpoint");
    a->dir = source.dir;
    Config cfg = source.config();
    validate(cfg);
    use_hf_tokenizer(cfg, source);  // an HF directory's tokenizer.json encodes the prompt and decodes the output
    // Only the tokenizer of the checkpoint's data is needed, not the data files.
    const std::unique_ptr<data::Tokenizer> tok = data::load_tokenizer(cfg.data.tokenizer);
    std::vector<int32_t> ids;
    if (!a->prompt_ids.empty()) {
      ids = parse_prompt_ids(a->prompt_ids);
    } else {
      try {  // before the model is built: a bad prompt is found at once, and named
        ids = data::prompt_ids(data::document_start_id(cfg, *tok), *tok, a->prompt);
      } catch (const UserError& e) {
        user_error("--prompt: {}", e.what());
      }
    }
    // A5: the prompt and the new tokens fit the model's context (the KV cache grows with them).
    if (int64_t(ids.size()) + a->max_new > int64_t(cfg.model.max_seq_len))
      user_error(
          "config error A5: --max-new {} after a prompt of {} tokens is longer than the model's context [model] "
          "max_seq_len = {} (checkpoint {}).\n  fix: use --max-new <= {}, or a shorter prompt.",
          a->max_new, ids.size(), cfg.model.max_seq_len, a->dir,
          std::max<int64_t>(0, int64_t(cfg.model.max_seq_len) - int64_t(ids.size())));
    if (!source.hf) cfg.checkpoint.load = a->dir;  // the trainer restores weights, expert bias and step
    cfg = resolve_config_for_tokenizer(cfg, *tok);
    for (int32_t id : ids)
      if (id >= cfg.model.vocab)
        user_error(
            "input error E4: --prompt-ids: token id {} is outside the model's vocabulary of {} ids.\n  fix: use "
            "ids in [0, {}).",
            id, cfg.model.vocab, cfg.model.vocab);
    Trainer trainer(cfg, ProcessGroups::single_process(), /*write_outputs=*/false);
    if (source.hf) hf::load_hf_weights(*source.hf, trainer.model(), ProcessGroups::single_process());
    rl::SamplingParams sp;
    sp.temperature = float(a->temperature);
    sp.greedy = a->temperature <= 0;
    sp.top_k = a->top_k;
    sp.top_p = float(a->top_p);
    rl::RolloutOptions opt;
    opt.max_new_tokens = a->max_new;
    opt.samples_per_prompt = a->samples;
    opt.seed = uint64_t(a->seed);
    opt.eos_id = a->ignore_eos ? -1 : tok->eos_id().value_or(-1);
    opt.record_routing = false;
    const Stopwatch timer;  // the generation itself (prefill + decode), not the model load
    const std::vector<rl::Response> out = rl::generate(trainer.model(), {ids}, sp, opt);
    const double generate_s = timer.seconds();
    std::printf("checkpoint %s (step %lld), prompt \"%s\"\n", a->dir.c_str(), (long long)trainer.step(),
                a->prompt.c_str());
    for (const rl::Response& r : out) {
      // Decoded after the prompt's own ids, then cut: a word-piece tokenizer decides spaces at word
      // starts from the context (SentencePiece drops the space of a leading "▁" piece).
      std::vector<int32_t> context(ids.begin() + (data::document_start_id(cfg, *tok) ? 1 : 0), ids.end());
      const std::string before = data::continuation_text(*tok, context);
      context.insert(context.end(), r.tokens.begin(), r.tokens.end());
      std::string text = data::continuation_text(*tok, context);
      text = text.starts_with(before) ? text.substr(before.size()) : data::continuation_text(*tok, r.tokens);
      double lp = 0;
      for (float x : r.logprob_policy) lp += x;
      std::printf("[%d] %s%s   (%zu tokens, %s, logprob %.3f)\n", r.sample, a->prompt.c_str(), text.c_str(),
                  r.tokens.size(), rl::finish_reason_name(r.finish), lp);
      if (a->json) {
        nlohmann::json j = {{"sample", r.sample},
                            {"text", text},
                            {"tokens", r.tokens},
                            {"finish", rl::finish_reason_name(r.finish)},
                            {"logprob_sample", r.logprob_sample},
                            {"logprob_policy", r.logprob_policy},
                            {"entropy", r.entropy}};
        std::printf("%s\n", j.dump().c_str());
      }
    }
    if (a->json) {  // one summary line: what bench/rollout_vs_hf.py times
      int64_t generated = 0;
      for (const rl::Response& r : out) generated += int64_t(r.tokens.size());
      const nlohmann::json j = {{"summary",
                                 {{"samples", out.size()},
                                  {"prompt_tokens", ids.size()},
                                  {"generated_tokens", generated},
                                  {"seconds", generate_s},
                                  {"tokens_per_s", generate_s > 0 ? double(generated) / generate_s : 0.0}}}};
      std::printf("%s\n", j.dump().c_str());
    }
    return 0;
  });
}

}  // namespace foldmoe::cli
