// Runs one stage's pipeline schedule (parallel/pipeline_schedule.h) over the `pp` communicator.
// The model side is callbacks: compute of a (micro-batch, chunk) and the buffers that transfers
// read from / write into. Member i of the `pp` communicator is stage i. Sends are non-blocking
// (isend, completed before the chunk's backward or when polled), receives block in schedule order,
// all with the tag pipeline_p2p_tag(...) + tag_base; the schedule's placement keeps this
// deadlock-free even if every send were synchronous.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "comm/communicator.h"
#include "parallel/pipeline_schedule.h"

namespace foldmoe {

struct PipelineCallbacks {
  // Forward / backward of local chunk `chunk` for micro-batch `mb`. The forward reads the activation
  // received for (mb, chunk) (unless it is virtual stage 0) and leaves its output where
  // send_buffer finds it; the backward likewise with gradients.
  std::function<void(int mb, int chunk)> forward;
  std::function<void(int mb, int chunk)> backward;
  // SendForward/SendBackward: the floats to send (the output of local a.chunk for a.microbatch).
  std::function<std::span<const float>(const PipeAction& a)> send_buffer;
  // RecvForward/RecvBackward: where to receive (the input of local a.chunk for a.microbatch); its
  // size is the message size.
  std::function<std::span<float>(const PipeAction& a)> recv_buffer;
  // Optional: called once a send has completed (its buffer may be freed).
  std::function<void(const PipeAction& a)> after_send;
};

// Executes `actions` (normally pipeline_schedule(spec, stage)) in order. `pp.rank()` must be
// `stage` and `pp.size()` must be spec.pp.
void run_pipeline_actions(const PipeScheduleSpec& spec, int stage, const std::vector<PipeAction>& actions,
                          Communicator& pp, const PipelineCallbacks& cb, int tag_base = 0);

// pipeline_schedule(spec, pp.rank()) run with run_pipeline_actions.
void run_pipeline_step(const PipeScheduleSpec& spec, Communicator& pp, const PipelineCallbacks& cb, int tag_base = 0);

}  // namespace foldmoe
