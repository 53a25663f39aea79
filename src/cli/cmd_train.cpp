// `foldmoe train`: train from a config (default: the built-in tiny MoE on the synthetic corpus).
#include <memory>

#include "cli/commands.h"
#include "cli/launch.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_train(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("train", "Train a model (default: the built-in tiny MoE)");
  auto opts = std::make_shared<ConfigOptions>();
  opts->add_to(sub);
  set_action(sub, [sub, opts] {
    Config cfg = resolve_config(opts->load(sub));
    if (!cfg.checkpoint.load.empty()) cfg.checkpoint.load = checkpoint_argument(cfg.checkpoint.load, "checkpoint.load");
    Trainer trainer(cfg, make_groups(cfg));
    trainer.run();
    return 0;
  });
}

}  // namespace foldmoe::cli
