// `foldmoe rl --config FILE --init CHECKPOINT`: RL post-training (GRPO / DAPO / HAPO, spec 04)
// from a pretrained checkpoint. [model]/[moe]/[data] come from the checkpoint; [rl] from the file.
#include <memory>

#include "cli/commands.h"
#include "cli/launch.h"
#include "rl/rl_trainer.h"

namespace foldmoe::cli {

namespace {
struct RlArgs {
  std::string init;
};
}  // namespace

void register_rl(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("rl", "RL post-training (presets grpo, dapo, hapo) from a checkpoint");
  auto opts = std::make_shared<ConfigOptions>();
  auto a = std::make_shared<RlArgs>();
  opts->add_to(sub);
  sub->add_option("--init", a->init,
                  "Checkpoint to start from: a run directory (its latest complete checkpoint), its checkpoints/ "
                  "directory or one …/checkpoints/step-NNNNNNNN")
      ->required();
  set_action(sub, [sub, opts, a] {
    const std::string init = checkpoint_argument(a->init, "--init");
    Config cfg = rl::rl_run_config(opts->load(sub), init);
    if (!cfg.checkpoint.load.empty()) cfg.checkpoint.load = checkpoint_argument(cfg.checkpoint.load, "checkpoint.load");
    rl::RlTrainer trainer(cfg, init, make_groups(cfg));  // one process, or the ranks of an mpirun launch
    trainer.run();
    return 0;
  });
}

}  // namespace foldmoe::cli
