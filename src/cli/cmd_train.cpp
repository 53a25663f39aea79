// `foldmoe train`: train from a config (default: the built-in tiny MoE on the synthetic corpus).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/launch.h"
#include "train/run_loop.h"
#include "train/stop_signals.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_train(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("train", "Train a model (default: the built-in tiny MoE)");
  auto opts = std::make_shared<ConfigOptions>();
  auto overwrite = std::make_shared<bool>(false);
  auto profile = std::make_shared<int>(0);
  add_profile_option(sub, profile);
  opts->add_to(sub);
  sub->add_flag("--overwrite", *overwrite,
                "Replace the metrics and checkpoints of an earlier run in --train.run_dir (docs/run-directory.md)");
  set_action(sub, [sub, opts, profile, overwrite] {
    Config cfg = resolve_config(opts->load(sub));
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
    trainer.run(dir);
    return 0;
  });
}

}  // namespace foldmoe::cli
