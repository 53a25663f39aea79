// Subcommand registration. Each subcommand lives in its own file and registers a callback that
// run_selected() invokes after parsing.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "config/config.h"

namespace foldmoe::cli {

void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_bench(CLI::App& app);
void register_dump_reference(CLI::App& app);
void register_config(CLI::App& app);
void register_generate(CLI::App& app);
void register_topology(CLI::App& app);
void register_plan(CLI::App& app);
void register_rl(CLI::App& app);
void register_tokenize(CLI::App& app);
void register_preprocess(CLI::App& app);
void register_inspect_data(CLI::App& app);
void register_convert(CLI::App& app);
void register_logprobs(CLI::App& app);

// Runs the callback of the parsed subcommand; returns the exit status.
int run_selected(CLI::App& app);
void set_action(CLI::App* sub, std::function<int()> action);

// The shared `--config FILE` option and `--section.key=value` overrides of a subcommand.
struct ConfigOptions {
  std::string file;
  void add_to(CLI::App* sub);
  // Built-in tiny MoE when no file is given; overrides applied; validated.
  Config load(CLI::App* sub) const;
};

// The `--section.key=value` words left over by the parser of `sub` applied to `c` (a word that is
// not one is refused with a suggestion); not validated.
Config apply_config_flags(CLI::App* sub, Config c);

// `--profile[=N]` of the commands that run steps: the Chrome trace of the N-th step this run
// executes (default 2, after the warm-up step); sets [log] profile_step (docs/observability.md §3).
void add_profile_option(CLI::App* sub, std::shared_ptr<int> profile_step);
void apply_profile_option(Config& cfg, int profile_step);

// locate_checkpoint (train/checkpoint_locator.h) for a checkpoint argument of the command line; when
// it picked the latest checkpoint of a run or checkpoints directory, rank 0 says which on stderr.
std::string checkpoint_argument(const std::string& arg, const std::string& what);

}  // namespace foldmoe::cli
