// `foldmoe rl --config FILE --init CHECKPOINT`: RL post-training (GRPO / DAPO / HAPO, docs/rl.md)
// from a pretrained checkpoint. [model]/[moe]/[data] come from the checkpoint; [rl] from the file.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/model_source.h"
#include "data/data_source.h"
#include "data/text_tokenizer.h"
#include "rl/tasks.h"
#include "rl/trainer.h"
#include "train/run_loop.h"
#include "train/stop_signals.h"

namespace foldmoe::cli {

namespace {
struct RlArgs {
  std::string init;
  bool overwrite = false;
  int show_prompts = 0;
};

// --show-prompts N: the response stop ids, then the first N training prompts exactly as the rollout
// receives them (ids and their decoded text), one JSON line each; no model is built, nothing written.
int show_prompts(const Config& cfg, int n) {
  const auto tok = data::load_tokenizer(cfg.data.tokenizer);
  const auto source = rl::make_problem_source(cfg.rl, uint64_t(cfg.train.seed), *tok, cfg.data.tokenizer);
  const std::optional<int32_t> start = data::document_start_id(cfg, *tok);
  std::vector<int32_t> stop = rl::response_stop_ids(cfg.rl, *tok, cfg.data.tokenizer);
  if (tok->eos_id()) stop.insert(stop.begin(), *tok->eos_id());
  std::printf("%s\n", nlohmann::json({{"stop_ids", stop}}).dump().c_str());
  for (int i = 0; i < n; ++i) {
    const rl::RlProblem p = source->train_problem(i);
    const std::vector<int32_t> ids = rl::problem_prompt_ids(p, start, *tok, cfg.rl.max_prompt_tokens);
    const nlohmann::json j = {{"prompt", p.prompt}, {"answer", p.answer}, {"ids", ids}};
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  return 0;
}
}  // namespace

void register_rl(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("rl", "RL post-training (presets grpo, dapo, hapo) from a checkpoint");
  auto opts = std::make_shared<ConfigOptions>();
  auto a = std::make_shared<RlArgs>();
  auto profile = std::make_shared<int>(0);
  add_profile_option(sub, profile);
  opts->add_to(sub);
  sub->add_flag("--overwrite", a->overwrite,
                "Replace the metrics and checkpoints of an earlier run in --train.run_dir (docs/run-directory.md)");
  sub->add_option("--init", a->init,
                  "Checkpoint to start from: a run directory (its latest complete checkpoint), its checkpoints/ "
                  "directory, one …/checkpoints/step-NNNNNNNN, or a Hugging Face model directory")
      ->required();
  sub->add_option("--show-prompts", a->show_prompts,
                  "Print the stop ids and the first N training prompts as token ids (after the chat template), "
                  "then exit without training");
  set_action(sub, [sub, opts, profile, a] {
    const std::string init = model_source(a->init, "--init").dir;  // a checkpoint or a Hugging Face directory
    Config cfg = rl::rl_run_config(opts->load(sub), init);
    if (a->show_prompts > 0) return show_prompts(cfg, a->show_prompts);
    apply_profile_option(cfg, *profile);
    train::install_stop_signals(cfg.train.exit_signals);  // from now on a stop signal saves, not kills
    // checkpoint.load = auto, and by default a run whose checkpoint directory holds a complete
    // checkpoint: continue from the latest complete one (docs/long-runs.md "Continuing").
    const AutoLoad auto_load = resolve_auto_load(cfg, a->overwrite);
    if (auto_load != AutoLoad::None && launcher_rank() == 0)
      std::printf("%s\n", auto_load_line(cfg, "rl", auto_load).c_str());
    const bool auto_resume = auto_load == AutoLoad::Asked;
    if (!cfg.checkpoint.load.empty()) cfg.checkpoint.load = checkpoint_argument(cfg.checkpoint.load, "checkpoint.load");
    // Paths and an earlier run in the directory are checked first; the trainer then validates [rl]
    // and the problems; only the run loop writes files.
    const RunDirectory dir = make_run_directory(cfg, "rl", cfg.rl.checkpoint_every, a->overwrite, auto_resume);
    rl::RlTrainer trainer(cfg, init, make_groups(cfg));  // one process, or the ranks of an mpirun launch
    trainer.run(dir);
    return 0;
  });
}

}  // namespace foldmoe::cli
