// `foldmoe train`: train from a config (default: the built-in tiny MoE on the synthetic corpus).
#include <cstdio>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/launch.h"
#include "config/validate.h"
#include "hf/hf_weights.h"
#include "train/run_loop.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_train(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("train", "Train a model (default: the built-in tiny MoE)");
  auto opts = std::make_shared<ConfigOptions>();
  auto overwrite = std::make_shared<bool>(false);
  auto profile = std::make_shared<int>(0);
  auto hf_export = std::make_shared<std::string>();
  auto hf_dtype = std::make_shared<std::string>("bf16");
  add_profile_option(sub, profile);
  sub->add_option("--hf-export", *hf_export,
                  "After the run, write the model as a Hugging Face directory DIR (each rank writes its own shards; "
                  "docs/hf-models.md)");
  sub->add_option("--hf-dtype", *hf_dtype, "dtype of --hf-export: bf16 (default) or fp32")
      ->check(CLI::IsMember({"bf16", "fp32"}));
  opts->add_to(sub);
  sub->add_flag("--overwrite", *overwrite,
                "Replace the metrics and checkpoints of an earlier run in --train.run_dir (docs/run-directory.md)");
  set_action(sub, [sub, opts, profile, overwrite, hf_export, hf_dtype] {
    Config cfg = opts->load(sub);
    if (!hf_export->empty()) hf::check_hf_output(*hf_export);  // before any work, on every rank
    // A Hugging Face directory as checkpoint.load: its config.json fixes the model keys and its
    // weights initialise the run (step 0); the run's own checkpoints are foldmoe's.
    std::optional<hf::HfModelConfig> hf_init;
    if (hf::is_hf_directory(cfg.checkpoint.load)) {
      hf_init = hf::read_hf_config(cfg.checkpoint.load);
      cfg = hf::apply_hf_config(cfg, *hf_init);
      cfg.checkpoint.load.clear();
      validate(cfg);
    }
    cfg = resolve_config(cfg);
    apply_profile_option(cfg, *profile);
    train::install_stop_signals(cfg.train.exit_signals);  // from now on a stop signal saves, not kills
    // checkpoint.load = auto, and by default a run whose checkpoint directory holds a complete
    // checkpoint: continue from the latest complete one (docs/long-runs.md "Continuing").
    const AutoLoad auto_load = resolve_auto_load(cfg, *overwrite);
    if (auto_load != AutoLoad::None && launcher_rank() == 0)
      std::printf("%s\n", auto_load_line(cfg, "train", auto_load).c_str());
    const bool auto_resume = auto_load == AutoLoad::Asked;
    if (!cfg.checkpoint.load.empty()) cfg.checkpoint.load = checkpoint_argument(cfg.checkpoint.load, "checkpoint.load");
    // Paths and an earlier run in the directory are checked before any work (nothing is written).
    // Every rank checks before make_groups, whose communicator splits no rank leaves early: no rank
    // can see files that rank 0 writes later in the run loop.
    const RunDirectory dir = make_run_directory(cfg, "train", cfg.checkpoint.interval, *overwrite, auto_resume);
    Trainer trainer(cfg, make_groups(cfg));
    // A run continued from its own latest checkpoint (checkpoint.load = auto, or by default) keeps it:
    // the HF weights only start a fresh run.
    if (hf_init && cfg.checkpoint.load.empty()) hf::load_hf_weights(*hf_init, trainer.model(), trainer.groups());
    trainer.run(dir);
    if (!hf_export->empty()) {
      hf::HfSaveOptions o;
      o.dtype = *hf_dtype;
      o.model_type = hf_init ? hf_init->model_type : "";
      o.tokenizer_dir = hf_init ? hf_init->dir : hf::tokenizer_dir_of(cfg);
      hf::save_hf_weights(*hf_export, cfg, trainer.model(), trainer.groups(), o);
      if (launcher_rank() == 0) std::printf("foldmoe train: Hugging Face export %s\n", hf_export->c_str());
    }
    return 0;
  });
}

}  // namespace foldmoe::cli
