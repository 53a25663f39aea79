// `foldmoe bench`: warm-up steps, then timed training steps; one JSON line with tokens/s, model
// FLOPs per token and MFU against a peak measured in the same run (a large sgemm).
#include <cstdio>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/option_checks.h"
#include "core/timer.h"
#include "train/flops.h"
#include "train/trainer.h"

namespace foldmoe::cli {

void register_bench(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("bench", "Benchmark training throughput (prints one JSON line)");
  auto opts = std::make_shared<ConfigOptions>();
  auto warmup = std::make_shared<int>(2);
  auto steps = std::make_shared<int>(5);
  opts->add_to(sub);
  sub->add_option("--warmup", *warmup, "Untimed warm-up steps")->check(integer_at_least("--warmup", 0, "2"));
  sub->add_option("--steps", *steps, "Timed steps")->check(integer_at_least("--steps", 1, "5"));
  set_action(sub, [sub, opts, warmup, steps] {
    Config cfg = resolve_config(opts->load(sub));
    cfg.train.steps = *warmup + *steps;
    cfg.checkpoint.save_final = false;
    cfg.log.progress = "off";
    const ProcessGroups groups = make_groups(cfg);  // one process, or the ranks of an mpirun launch
    Trainer trainer(cfg, groups, /*write_outputs=*/false);
    for (int i = 0; i < *warmup; ++i) trainer.train_step();
    groups.world->barrier();
    Stopwatch w;
    for (int i = 0; i < *steps; ++i) trainer.train_step();
    groups.world->barrier();
    const double secs = w.seconds() / *steps;
    const int dp = groups.dp->size(), world = groups.world->size();
    const double tokens = double(cfg.train.micro_batch) * cfg.micro_batches_per_replica(dp) * dp * cfg.train.seq_len;
    const double fpt = model_flops_per_token(cfg);
    const double peak = trainer.peak_flops();
    nlohmann::json j = {{"impl", "foldmoe"},
                        {"tokens_per_s", tokens / secs},
                        {"step_ms", secs * 1e3},
                        {"flops_per_token", fpt},
                        {"achieved_gflops", fpt * tokens / secs / 1e9},
                        {"peak_gflops", peak / 1e9},
                        {"mfu", fpt * tokens / secs / (peak * world)},
                        {"ranks", world},
                        {"layout", fmt::format("tp{} cp{} pp{} dp{} | etp{} ep{} edp{}", groups.tp->size(),
                                               groups.cp->size(), groups.pp->size(), dp, groups.etp->size(),
                                               groups.ep->size(), groups.edp->size())},
                        {"tokens_per_step", tokens},
                        {"timed_steps", *steps}};
    if (groups.world->rank() == 0) std::printf("%s\n", j.dump().c_str());
    return 0;
  });
}

}  // namespace foldmoe::cli
