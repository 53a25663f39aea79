// Test seam for the no-hang tests (docs/long-runs.md "No hangs"): FOLDMOE_FAULT_INJECT makes one
// rank fail or stall at a chosen point, so that tests can check that the whole job still ends.
//
//   FOLDMOE_FAULT_INJECT="rank=2,phase=step,step=3"            rank 2 raises a UserError
//   FOLDMOE_FAULT_INJECT="rank=1,phase=step,step=2,kind=hang"  rank 1 stops (sleeps) there
//
// Phases: startup (after the process groups are made), data (the batch of a step), step (before
// a training step), save (before a checkpoint is written), write (rank 0's writing of the
// checkpoint files: on the background thread with checkpoint.async, so the failure is reported at
// the next step). `step` is optional (any step). Unset, it costs one branch per call.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace foldmoe {

struct FaultSpec {
  int rank = 0;
  std::string phase;            // startup | data | step | save | write
  std::optional<int64_t> step;  // unset: the first time the phase is reached
  std::string kind = "error";   // error | hang
};

// Parses the variable's text; a malformed value is a UserError naming it.
FaultSpec parse_fault_spec(std::string_view text);

// Raises (kind error) or sleeps for ever (kind hang) when FOLDMOE_FAULT_INJECT names this rank,
// `phase` and `step`; otherwise returns at once.
void inject_fault(std::string_view phase, int64_t step = -1);

}  // namespace foldmoe
