#include "comm/mpi_watchdog.h"

#include <fmt/format.h>
#include <mpi.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/launch_env.h"

namespace foldmoe {
namespace {

using Clock = std::chrono::steady_clock;

struct Watch {
  std::atomic<int64_t> since_ns{0};  // 0: not inside an MPI call
  std::atomic<const char*> op{nullptr};
  std::atomic<const std::string*> group{nullptr};
  std::atomic<int> member{0}, members{0};
  int depth = 0;  // main thread only
  double timeout = 0;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread thread;
  // A process that leaves without stop_watchdog() must not meet std::terminate of a joinable thread.
  ~Watch() {
    if (!thread.joinable()) return;
    {
      std::lock_guard lock(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
  }
};

Watch& watch() {
  static Watch w;
  return w;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

void run(Watch& w, double timeout) {
  // Polls often enough to abort within ~10% (at least 50 ms, at most 1 s) after the deadline.
  const auto period = std::chrono::duration<double>(std::clamp(timeout / 10, 0.05, 1.0));
  std::unique_lock lock(w.mu);
  while (!w.cv.wait_for(lock, period, [&] { return w.stop; })) {
    const int64_t since = w.since_ns.load(std::memory_order_relaxed);
    if (since == 0) continue;
    const double waited = double(now_ns() - since) * 1e-9;
    if (waited <= timeout) continue;
    const std::string* group = w.group.load();
    const std::string msg = watchdog_message(launch_env().rank, w.op.load(), group ? *group : std::string("?"),
                                             w.member.load(), w.members.load(), waited, timeout);
    if (w.since_ns.load(std::memory_order_acquire) != since) continue;  // the call ended meanwhile
    std::fprintf(stderr, "foldmoe: error: %s\n", msg.c_str());
    std::fflush(stderr);
    // MPI_Abort from this thread: the main thread is blocked inside MPI and cannot act. Open MPI's
    // abort only signals the launcher, which ends every rank; _Exit is the fallback.
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3);
  }
}

}  // namespace

void set_collective_timeout(double seconds) {
  Watch& w = watch();
  stop_watchdog();
  w.timeout = seconds;
  if (seconds <= 0) return;
  w.stop = false;
  w.thread = std::thread(run, std::ref(w), seconds);
}

double collective_timeout() {
  return watch().timeout;
}

void watchdog_enter(const char* op, const std::string* group, int member, int members) {
  Watch& w = watch();
  if (w.depth++ > 0) return;
  w.op.store(op, std::memory_order_relaxed);
  w.group.store(group, std::memory_order_relaxed);
  w.member.store(member, std::memory_order_relaxed);
  w.members.store(members, std::memory_order_relaxed);
  w.since_ns.store(now_ns(), std::memory_order_release);
}

void watchdog_leave() {
  Watch& w = watch();
  if (--w.depth == 0) w.since_ns.store(0, std::memory_order_release);
}

std::string watchdog_message(int world_rank, const char* op, const std::string& group, int member, int members,
                             double waited, double timeout) {
  return fmt::format(
      "rank {}: {} on group '{}' (member {} of {}) has waited {:.1f} s, longer than [parallel] timeout_s = {} — "
      "another rank failed or stopped (see its message above); the job is aborted.\n  fix: find the rank that "
      "failed; if the wait was legitimate (e.g. a slow checkpoint save), raise --parallel.timeout_s (0 = no "
      "watchdog).",
      world_rank, op ? op : "?", group, member, members, waited, timeout);
}

void stop_watchdog() {
  Watch& w = watch();
  if (!w.thread.joinable()) return;
  {
    std::lock_guard lock(w.mu);
    w.stop = true;
  }
  w.cv.notify_all();
  w.thread.join();
}

}  // namespace foldmoe
