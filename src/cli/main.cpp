// `foldmoe`: one binary, one subcommand per file (train, eval, bench, generate, topology, config,
// dump-reference, rl). Every user error, the command line's included, exits 2 with one message.
#include <cstdio>
#include <exception>
#include <string>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/parse_errors.h"
#include "cli/version.h"
#include "core/check.h"

namespace {

int report_user_error(const std::string& message) {
  // Every rank detects the same user error; one message is enough.
  if (foldmoe::cli::launcher_rank() == 0) std::fprintf(stderr, "foldmoe: error: %s\n", message.c_str());
  foldmoe::cli::shutdown_launch();
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"foldmoe: Mixture-of-Experts training with 5-D parallelism and RL post-training"};
  app.require_subcommand(1);
  app.set_version_flag(
      "--version",
      [] {
        std::string v = foldmoe::cli::version_text();
        v.pop_back();  // CLI11 ends the text with its own newline
        return v;
      },
      "Print the version, backends and libraries");
  foldmoe::cli::register_train(app);
  foldmoe::cli::register_eval(app);
  foldmoe::cli::register_bench(app);
  foldmoe::cli::register_dump_reference(app);
  foldmoe::cli::register_config(app);
  foldmoe::cli::register_generate(app);
  foldmoe::cli::register_topology(app);
  foldmoe::cli::register_rl(app);
  foldmoe::cli::register_tokenize(app);
  foldmoe::cli::register_preprocess(app);
  foldmoe::cli::register_inspect_data(app);
  app.footer("Run `foldmoe COMMAND --help` for the options of a command.");  // after the commands: not inherited
  try {
    foldmoe::cli::check_command_word(app, argc, argv);
    app.parse(argc, argv);
    const int rc = foldmoe::cli::run_selected(app);
    foldmoe::cli::shutdown_launch();
    return rc;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return report_user_error(foldmoe::cli::explain_parse_error(app, e));
  } catch (const foldmoe::UserError& e) {
    return report_user_error(e.what());
  }
}
