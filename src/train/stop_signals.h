// Graceful stop on a signal (docs/long-runs.md): the first of the configured signals only records
// itself; the run loop polls it after each step, the ranks agree, save a checkpoint and exit 0.
// A second signal means "now": the process exits at once with status 128 + signal number (a save
// in progress is left as its temporary directory, which the next start removes).
#pragma once

#include <string>
#include <vector>

namespace foldmoe::train {

// Installs the handlers for `names` (e.g. "SIGTERM"; validated by config rule V3). Idempotent, and
// a signal already recorded stays recorded: the commands install them as soon as the config is
// read (a signal during start-up then stops the run after its first step) and the run loop again
// after MPI has started. Signals not named keep their current disposition.
void install_stop_signals(const std::vector<std::string>& names);

// The first stop signal received since install_stop_signals (0 = none).
int received_stop_signal();

// "SIGTERM" for SIGTERM, ...; the number for another signal.
std::string signal_name(int signal_number);
// SIGTERM for "SIGTERM"; -1 for a name that is not one of SIGTERM SIGINT SIGUSR1 SIGUSR2 SIGHUP.
int signal_number(const std::string& name);

}  // namespace foldmoe::train
