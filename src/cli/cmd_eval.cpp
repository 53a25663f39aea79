// `foldmoe eval --checkpoint DIR`: exact-answer accuracy per task and held-out loss. DIR is a
// checkpoint, or a run directory (its latest complete checkpoint).
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/model_source.h"
#include "cli/option_checks.h"
#include "config/toml_reader.h"
#include "config/validate.h"
#include "hf/hf_weights.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_eval(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("eval", "Evaluate a checkpoint: task accuracy and held-out loss");
  auto arg = std::make_shared<std::string>();
  auto samples = std::make_shared<int>(0);
  sub->add_option(
         "--checkpoint", *arg,
         "Checkpoint: a run directory (its latest complete checkpoint), its checkpoints/ directory or one "
         "…/checkpoints/step-NNNNNNNN, or a Hugging Face model directory (its config.json, safetensors and tokenizer)")
      ->required();
  sub->add_option("--samples", *samples, "Held-out examples per task (default: [data] eval_samples)")
      ->check(integer_at_least("--samples", 1, "200"));
  set_action(sub, [arg, samples] {
    const ModelSource source = model_source(*arg, "--checkpoint");
    const std::string& dir = source.dir;
    Config cfg = source.config();
    validate(cfg);
    if (!source.hf) cfg.checkpoint.load = dir;  // the trainer restores weights, expert bias and step
    // The held-out loss reads the validation split, whatever [eval] interval the run had.
    const std::unique_ptr<data::DataSource> held_out = data::make_data_source(cfg, /*with_validation=*/true);
    Trainer trainer(resolve_config(cfg, *held_out), ProcessGroups::single_process(), /*write_outputs=*/false);
    if (source.hf) hf::load_hf_weights(*source.hf, trainer.model(), ProcessGroups::single_process());
    const int n = *samples > 0 ? *samples : cfg.data.eval_samples;
    const EvalResult r = evaluate(trainer.model(), *held_out, n, cfg.train.seq_len);
    if (held_out->synthetic())
      std::printf("checkpoint %s (step %lld), %d held-out examples per task\n", dir.c_str(), (long long)trainer.step(),
                  n);
    else  // no tasks to answer: the loss on the first validation batch
      std::printf("checkpoint %s (step %lld), %s\n", dir.c_str(), (long long)trainer.step(),
                  held_out->describe().c_str());
    nlohmann::json j = {{"step", trainer.step()}, {"heldout_loss", r.loss}};
    for (const auto& [task, acc] : r.accuracy) {
      std::printf("  %-8s accuracy %6.2f%%\n", task.c_str(), 100.0 * acc);
      j["accuracy"][task] = acc;
    }
    std::printf("  held-out loss %.4f\n%s\n", r.loss, j.dump().c_str());
    return 0;
  });
}

}  // namespace foldmoe::cli
