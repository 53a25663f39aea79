// The collective watchdog of the MPI backend (docs/long-runs.md "No hangs"): a wait inside a
// collective or point-to-point call that lasts longer than [parallel] timeout_s aborts the whole
// job with a message naming this rank, the group and the operation. A rank that failed or stopped
// otherwise leaves the others waiting for ever.
//
// The fast path is two relaxed atomic stores per call (enter/leave); a thread started only when a
// timeout is set polls them a few times per timeout.
#pragma once

#include <string>

namespace foldmoe {

// Starts (seconds > 0) or stops (0) the watchdog. Called on the main thread.
void set_collective_timeout(double seconds);
double collective_timeout();

// Marks the start and end of one blocking MPI operation of the main thread. `group` must stay
// valid until leave (the communicator's name). Nested calls keep the outermost operation.
void watchdog_enter(const char* op, const std::string* group, int member, int members);
void watchdog_leave();

// The text the watchdog prints, e.g. "rank 1: all_reduce on group 'dp' (member 1 of 4) has waited
// 3.0 s, longer than [parallel] timeout_s = 3 ...".
std::string watchdog_message(int world_rank, const char* op, const std::string& group, int member, int members,
                             double waited, double timeout);

// Stops the thread (before MPI_Finalize).
void stop_watchdog();

}  // namespace foldmoe
