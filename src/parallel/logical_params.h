// The logical (unsharded) view of a distributed model's parameters, for checkpoints and for
// comparing layouts. Every rank learns the name and logical shape of every parameter of the
// world; values move between a rank's local (sharded) arenas and arena-shaped logical buffers
// through each parameter's global index map. A checkpoint is therefore written once in logical
// form and loads under any layout (resharding).
#pragma once

#include <memory>
#include <vector>

#include "comm/process_groups.h"
#include "core/arena.h"

namespace foldmoe {

// All members of the group call it; returns every member's string, in member order.
std::vector<std::string> all_gather_strings(Communicator& comm, const std::string& mine);

class LogicalParams {
 public:
  // Collective over the world: gathers (name, logical shape, flags) of every parameter.
  LogicalParams(const ParamArena& dense, const ParamArena& expert, const ProcessGroups& groups);

  ParamArena& dense() { return *dense_; }
  ParamArena& expert() { return *expert_; }
  ParamArena& logical(ArenaKind k) { return k == ArenaKind::Dense ? *dense_ : *expert_; }
  // Hands a logical arena over (e.g. to a background checkpoint write); gather and scatter may not
  // be called afterwards.
  std::unique_ptr<ParamArena> release(ArenaKind k) { return std::move(k == ArenaKind::Dense ? dense_ : expert_); }

  // Collective: assembles logical values (arena-shaped for the logical arena) from local
  // arena-shaped values (parameters, or optimizer moments) on every rank. Each logical element is
  // contributed by exactly one owner (dense: dp_cp rank 0, and tp rank 0 for TP-replicated
  // parameters; experts: edp rank 0), so the world sum is exact.
  std::vector<float> gather(const ParamArena& local, const float* local_values) const;
  // Local: picks this rank's elements of logical values into local arena-shaped values.
  void scatter(const ParamArena& local, const float* logical_values, float* local_values) const;

 private:
  const ProcessGroups& groups_;
  std::unique_ptr<ParamArena> dense_, expert_;
};

}  // namespace foldmoe
