// `foldmoe`: one binary, one subcommand per file (train, eval, bench, generate, topology, config,
// dump-reference, rl). Every user error, the command line's included, exits 2 with one message.
#include <chrono>
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <thread>

#include <CLI/CLI.hpp>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/parse_errors.h"
#include "cli/version.h"
#include "comm/mpi_communicator.h"
#include "core/check.h"
#include "core/launch_env.h"

namespace {

// Ends the process after an error with exit status `code`. Before MPI starts every rank checks the
// same things and meets the same error: rank 0 prints it and each rank leaves. Once MPI runs an
// error may be this rank's alone, and its peers would wait for it in their next collective for
// ever: the rank prints the message with its rank and ends the whole job (docs/long-runs.md).
int fail(const std::string& message, int code) {
  if (foldmoe::mpi_running() && foldmoe::mpi_world_size() > 1) {
    const int rank = foldmoe::launch_env().rank;
    // When every rank meets the error, rank 0's abort ends the others during this pause: the
    // message is printed once.
    if (rank != 0) std::this_thread::sleep_for(std::chrono::seconds(2));
    std::fprintf(stderr, "foldmoe: error (rank %d): %s\n", rank, message.c_str());
    foldmoe::abort_mpi_job(code);
  }
  if (foldmoe::cli::launcher_rank() == 0) std::fprintf(stderr, "foldmoe: error: %s\n", message.c_str());
  foldmoe::cli::shutdown_launch();
  return code;
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
  foldmoe::cli::register_plan(app);
  foldmoe::cli::register_rl(app);
  foldmoe::cli::register_tokenize(app);
  foldmoe::cli::register_preprocess(app);
  foldmoe::cli::register_inspect_data(app);
  foldmoe::cli::register_convert(app);
  foldmoe::cli::register_logprobs(app);
  app.footer("Run `foldmoe COMMAND --help` for the options of a command.");  // after the commands: not inherited
  try {
    foldmoe::cli::check_command_word(app, argc, argv);
    app.parse(argc, argv);
    const int rc = foldmoe::cli::run_selected(app);
    foldmoe::cli::shutdown_launch();
    return rc;
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail(foldmoe::cli::explain_parse_error(app, e), 2);
  } catch (const foldmoe::UserError& e) {
    return fail(e.what(), 2);
  } catch (const std::bad_alloc&) {
    return fail(
        "out of memory: an allocation failed (std::bad_alloc).\n  fix: `foldmoe topology --config FILE --world N` "
        "estimates the memory per rank; use a smaller model, batch or seq_len, or more ranks",
        2);
  } catch (const std::exception& e) {
    return fail(std::string("unexpected failure: ") + e.what(), 1);
  }
}
