// `foldmoe`: one binary, one subcommand per file (train, eval, bench, dump-reference, config, generate).
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "core/check.h"

int main(int argc, char** argv) {
  CLI::App app{"foldmoe: Mixture-of-Experts training with 5-D parallelism and RL post-training"};
  app.require_subcommand(1);
  foldmoe::cli::register_train(app);
  foldmoe::cli::register_eval(app);
  foldmoe::cli::register_bench(app);
  foldmoe::cli::register_dump_reference(app);
  foldmoe::cli::register_config(app);
  foldmoe::cli::register_generate(app);
  foldmoe::cli::register_rl(app);
  try {
    app.parse(argc, argv);
    return foldmoe::cli::run_selected(app);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const foldmoe::UserError& e) {
    std::fprintf(stderr, "foldmoe: error: %s\n", e.what());
    return 2;
  }
}
