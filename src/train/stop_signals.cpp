#include "train/stop_signals.h"

#include <unistd.h>

#include <atomic>
#include <csignal>

#include "core/check.h"

namespace foldmoe::train {
namespace {

constexpr struct {
  const char* name;
  int number;
} kSignals[] = {
    {"SIGTERM", SIGTERM}, {"SIGINT", SIGINT}, {"SIGUSR1", SIGUSR1}, {"SIGUSR2", SIGUSR2}, {"SIGHUP", SIGHUP}};

std::atomic<int> g_received{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

// Async-signal-safe: an atomic exchange, write(2) and _exit(2) only.
void on_stop_signal(int sig) {
  if (g_received.exchange(sig) == 0) return;
  static const char msg[] = "foldmoe: second stop signal, exiting now without saving\n";
  ssize_t ignored = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  (void)ignored;
  ::_exit(128 + sig);
}

}  // namespace

int signal_number(const std::string& name) {
  for (const auto& s : kSignals)
    if (name == s.name) return s.number;
  return -1;
}

std::string signal_name(int number) {
  for (const auto& s : kSignals)
    if (number == s.number) return s.name;
  return std::to_string(number);
}

void install_stop_signals(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    const int sig = signal_number(name);
    FOLDMOE_CHECK(sig > 0, "unknown stop signal '{}' passed validation", name);
    struct sigaction sa {};
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;  // blocking reads and writes resume; the flag is polled between steps
    FOLDMOE_CHECK(::sigaction(sig, &sa, nullptr) == 0, "sigaction({}) failed", name);
  }
}

int received_stop_signal() {
  return g_received.load();
}

}  // namespace foldmoe::train
