// `foldmoe logprobs --checkpoint DIR (--input tokens.jsonl | --text-input text.jsonl) --output OUT`:
// the log-probability of every next token of given sequences (and with --logits the logits) as a
// safetensors file, under any layout (docs/logprobs.md).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/model_source.h"
#include "config/validate.h"
#include "core/check.h"
#include "core/safetensors.h"
#include "data/data_source.h"
#include "data/sequence_input.h"
#include "hf/hf_weights.h"
#include "train/logprobs.h"
#include "train/trainer.h"

namespace foldmoe::cli {

namespace {
struct LogprobsArgs {
  std::string dir, input, text_input, output;
  bool logits = false, overwrite = false;
};

// E8: the output's folder exists and is writable; an existing file is replaced only with --overwrite.
void check_output(const std::string& out, bool overwrite) {
  namespace fs = std::filesystem;
  const fs::path p(out);
  const fs::path parent = p.has_parent_path() ? p.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(parent, ec))
    user_error(
        "logprobs error E8: the folder {} of --output {} does not exist.\n  fix: create it, or write the "
        "output elsewhere.",
        parent.string(), out);
  if (::access(parent.c_str(), W_OK) != 0)
    user_error("logprobs error E8: the folder {} of --output {} is not writable.\n  fix: write the output elsewhere.",
               parent.string(), out);
  if (fs::is_directory(p, ec))
    user_error("logprobs error E8: --output {} is a directory.\n  fix: name a file, e.g. {}/logprobs.safetensors.", out,
               out);
  if (fs::exists(p, ec) && !overwrite)
    user_error(
        "logprobs error E8: --output {} exists already.\n  fix: pass --overwrite to replace it, or name "
        "another file.",
        out);
}

void write_scores(const LogprobsArgs& a, const data::SequenceInput& in, const std::vector<SequenceScores>& scores,
                  int64_t V) {
  SafetensorsFile f;
  double nll = 0;
  int64_t scored = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const std::vector<int32_t>& seq = in.sequences[i];
    const int64_t L = int64_t(seq.size());
    Tensor t = Tensor::empty({L}, DType::I32);
    std::copy(seq.begin(), seq.end(), t.data<int32_t>());
    f.tensors["tokens." + std::to_string(i)] = std::move(t);
    Tensor lp = Tensor::empty({L - 1});
    std::copy(scores[i].logprobs.begin(), scores[i].logprobs.end(), lp.data<float>());
    for (float x : scores[i].logprobs) nll -= double(x);
    scored += L - 1;
    f.tensors["logprobs." + std::to_string(i)] = std::move(lp);
    if (a.logits) {
      Tensor lg = Tensor::empty({L - 1, V});
      std::copy(scores[i].logits.begin(), scores[i].logits.end(), lg.data<float>());
      f.tensors["logits." + std::to_string(i)] = std::move(lg);
    }
  }
  const double mean_nll = nll / double(std::max<int64_t>(scored, 1));
  f.metadata = {{"format", "foldmoe-logprobs-1"},
                {"count", std::to_string(scores.size())},
                {"vocab", std::to_string(V)},
                {"scored_tokens", std::to_string(scored)},
                {"mean_nll", fmt::format("{:.17g}", mean_nll)},
                {"logits", a.logits ? "true" : "false"},
                {"checkpoint", a.dir},
                {"input", in.path}};
  // Written next to the output under a temporary name, then renamed into place: a reader never
  // sees a partial file, and an interrupted run leaves the earlier output as it was.
  const std::string tmp = fmt::format("{}.tmp-{}", a.output, ::getpid());
  try {
    write_safetensors(tmp, f);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove(tmp, ec);
    throw;
  }
  std::filesystem::rename(tmp, a.output);
  std::printf("foldmoe logprobs: %zu sequences, %lld scored tokens, mean NLL %.6f -> %s\n", scores.size(),
              (long long)scored, mean_nll, a.output.c_str());
}
}  // namespace

void register_logprobs(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "logprobs", "Log-probabilities (and logits) of every next token of given sequences (docs/logprobs.md)");
  auto a = std::make_shared<LogprobsArgs>();
  sub->add_option("--checkpoint", a->dir,
                  "Checkpoint: a run directory (its latest complete checkpoint), its checkpoints/ directory or one "
                  "…/checkpoints/step-NNNNNNNN, or a Hugging Face model directory")
      ->required();
  CLI::Option* in = sub->add_option("--input", a->input, "Token ids: one JSON list of ids per line");
  CLI::Option* text =
      sub->add_option("--text-input", a->text_input,
                      "Text: one JSON string (or {\"text\": ...}) per line, encoded with the model's tokenizer");
  in->excludes(text);
  sub->add_option("--output", a->output, "The safetensors file to write (rank 0)")->required();
  sub->add_flag("--logits", a->logits, "Also write the logits: logits.i [len-1, vocab] fp32");
  sub->add_flag("--overwrite", a->overwrite, "Replace an existing --output");
  sub->allow_extras();
  sub->footer("The layout is set as --parallel.key=value (tp, cp, pp, ep, etp; dp follows from the world size).");
  set_action(sub, [sub, a] {
    if (a->input.empty() && a->text_input.empty())
      user_error(
          "logprobs error E2: give the sequences to score: --input tokens.jsonl (token ids) or --text-input "
          "text.jsonl (text).");
    const ModelSource source = model_source(a->dir, "--checkpoint");
    a->dir = source.dir;
    Config cfg = source.config();
    // The layout is this command's, not the training run's.
    cfg.parallel = Config{}.parallel;
    cfg = apply_config_flags(sub, cfg);
    // One sequence per micro-batch, padded to a multiple of TP·CP (·2 with CP); score_sequences runs
    // one micro-batch per round of sequences, a multiple of pp with vpp > 1 (L14). The layout checks
    // and the memory estimate see that shape: the padding unit now, the longest sequence below.
    const int64_t multiple = int64_t(cfg.parallel.tp) * cfg.parallel.cp * (cfg.parallel.cp > 1 ? 2 : 1);
    cfg.train.seq_len = int(std::max<int64_t>(2, multiple));
    cfg.train.micro_batch = 1;
    cfg.train.global_batch = 0;
    cfg.train.micro_batches = cfg.parallel.vpp > 1 ? cfg.parallel.pp : 1;
    validate(cfg);
    check_output(a->output, a->overwrite);  // before any work
    data::SequenceInput seqs;
    std::unique_ptr<data::Tokenizer> tok;
    if (!a->text_input.empty()) {
      // The directory's tokenizer encodes the texts (an HF directory's tokenizer.json, else the checkpoint's own).
      Config with_tokenizer = cfg;
      use_hf_tokenizer(with_tokenizer, source);
      if (source.hf && with_tokenizer.data.tokenizer != source.dir)
        user_error(
            "logprobs error E7: --text-input needs the model's tokenizer, and the Hugging Face directory {} "
            "has no tokenizer.json.\n  fix: pass token ids with --input, or add the model's tokenizer.json.",
            source.dir);
      tok = data::load_tokenizer(with_tokenizer.data.tokenizer);
      seqs = data::read_text_sequences(a->text_input, data::document_start_id(cfg, *tok), *tok);
    } else {
      seqs = data::read_token_sequences(a->input);
    }
    if (cfg.model.vocab <= 0) {  // a checkpoint whose vocabulary came from its tokenizer
      if (!tok) tok = data::load_tokenizer(cfg.data.tokenizer);
      cfg = resolve_config_for_tokenizer(cfg, *tok);
    }
    data::check_sequences(seqs, cfg.model.vocab, cfg.model.max_seq_len);
    int64_t longest = 0;
    for (const auto& s : seqs.sequences) longest = std::max<int64_t>(longest, int64_t(s.size()) - 1);
    int64_t S = (longest + multiple - 1) / multiple * multiple;
    if (S > cfg.model.max_seq_len) S = std::max(multiple, cfg.model.max_seq_len / multiple * multiple);
    cfg.train.seq_len = int(std::max<int64_t>(2, S));
    validate(cfg);
    if (!source.hf) cfg.checkpoint.load = a->dir;  // the trainer restores weights and expert bias
    Trainer trainer(cfg, make_groups(cfg), /*write_outputs=*/false);
    if (source.hf) hf::load_hf_weights(*source.hf, trainer.model(), trainer.groups());
    const std::vector<SequenceScores> scores =
        score_sequences(trainer.model(), trainer.groups(), seqs.sequences, a->logits);
    if (trainer.groups().world->rank() == 0) write_scores(*a, seqs, scores, cfg.model.vocab);
    return 0;
  });
}

}  // namespace foldmoe::cli
