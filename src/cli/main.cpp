// `foldmoe`: one binary, one subcommand per file (train, eval, bench, generate, topology, config, dump-reference).
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
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
  foldmoe::cli::register_topology(app);
  foldmoe::cli::register_rl(app);
  try {
    app.parse(argc, argv);
    const int rc = foldmoe::cli::run_selected(app);
    foldmoe::cli::shutdown_launch();
    return rc;
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const foldmoe::UserError& e) {
    // Every rank detects the same user error; one message is enough.
    if (foldmoe::cli::launcher_rank() == 0) std::fprintf(stderr, "foldmoe: error: %s\n", e.what());
    foldmoe::cli::shutdown_launch();
    return 2;
  }
}
