// Where a step's time goes: per-phase wall-clock accumulators (the step-time breakdown of the
// metrics) and an optional recorder of timed events for one profiled step (a Chrome trace,
// chrome://tracing or Perfetto "X" events). Scopes are cheap when nothing records: two clock reads.
//
// Phases nest as the code does: communication inside a forward counts in the forward too. The
// accumulators are per thread (pipeline tests run stages on threads); the recorder is per process
// and only ever switched on by the run loop's thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace foldmoe::trace {

enum class Phase : uint8_t { Data, Forward, Backward, Optimizer, Eval, Checkpoint, kCount };
inline constexpr int kNumPhases = int(Phase::kCount);
const char* phase_name(Phase p);  // "data", "forward", ...

using PhaseSeconds = std::array<double, kNumPhases>;
// Seconds this thread spent in each phase since the previous call (then zeroed).
PhaseSeconds take_phase_seconds();
// Adds to this thread's accumulators (to put back what take_phase_seconds took, adjusted).
void add_phase_seconds(const PhaseSeconds& s);

struct Event {
  std::string name;
  std::string category;  // "compute", "comm", "data", "optimizer", "checkpoint", ...
  int64_t start_us = 0;  // microseconds of the system clock (comparable across ranks of one node)
  int64_t duration_us = 0;
};

// Starts recording events (clears earlier ones) / stops and returns what was recorded.
void begin_recording();
std::vector<Event> end_recording();
bool recording();
// Appends one event (only while recording).
void record(std::string name, std::string category, std::chrono::system_clock::time_point start,
            std::chrono::system_clock::time_point end);

// Times a phase; while recording, also records an event named `label` (the phase's name if empty).
class PhaseScope {
 public:
  explicit PhaseScope(Phase p, std::string label = {});
  ~PhaseScope();
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase phase_;
  std::string label_;
  std::chrono::steady_clock::time_point t0_;
  std::chrono::system_clock::time_point wall0_;
};

// The Chrome trace JSON of the events of every rank (pid = rank, one thread each): the
// {"traceEvents": [...]} object format, timestamps in microseconds from the earliest event.
std::string chrome_trace_json(const std::vector<std::vector<Event>>& events_per_rank, int64_t step);

// Events <-> a compact text form, to move one rank's events to the rank that writes the file.
std::string serialize(const std::vector<Event>& events);
std::vector<Event> deserialize(const std::string& text);

}  // namespace foldmoe::trace
