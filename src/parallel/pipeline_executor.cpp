#include "parallel/pipeline_executor.h"

#include "core/check.h"

namespace foldmoe {

void run_pipeline_actions(const PipeScheduleSpec& spec, int stage, const std::vector<PipeAction>& actions,
                          Communicator& pp, const PipelineCallbacks& cb, int tag_base) {
  FOLDMOE_CHECK(pp.size() == spec.pp, "pipeline communicator has {} members, the schedule {} stages", pp.size(),
                spec.pp);
  FOLDMOE_CHECK(pp.rank() == stage, "pipeline communicator rank {} runs the schedule of stage {}", pp.rank(), stage);
  // Sends are non-blocking (docs/pipeline.md §6.2): a stage goes on computing while its output travels.
  // A send's buffer stays untouched until it completes: the activation of (m, c) is not changed
  // before the backward of (m, c), which waits for it first; input gradients are released by
  // after_send only once sent. Receives block, in schedule order, so the deadlock-freedom of the
  // blocking placement carries over (a send never blocks).
  struct InFlight {
    PipeAction a;
    int64_t handle;
  };
  std::vector<InFlight> in_flight;
  const auto finish = [&](size_t i, bool wait) {
    if (wait)
      pp.wait_send(in_flight[i].handle);
    else if (!pp.test_send(in_flight[i].handle))
      return false;
    if (cb.after_send) cb.after_send(in_flight[i].a);
    in_flight.erase(in_flight.begin() + std::ptrdiff_t(i));
    return true;
  };
  const auto poll = [&] {  // release what has arrived, so memory follows the schedule
    for (size_t i = 0; i < in_flight.size();)
      if (!finish(i, false)) ++i;
  };
  for (const PipeAction& a : actions) {
    switch (a.op) {
      case PipeOp::Forward:
        FOLDMOE_CHECK(cb.forward, "pipeline: no forward callback");
        poll();
        cb.forward(a.microbatch, a.chunk);
        break;
      case PipeOp::Backward:
        FOLDMOE_CHECK(cb.backward, "pipeline: no backward callback");
        poll();
        for (size_t i = 0; i < in_flight.size();) {
          const PipeAction& s = in_flight[i].a;
          if (s.op == PipeOp::SendForward && s.microbatch == a.microbatch && s.chunk == a.chunk)
            finish(i, true);
          else
            ++i;
        }
        cb.backward(a.microbatch, a.chunk);
        break;
      case PipeOp::SendForward:
      case PipeOp::SendBackward: {
        FOLDMOE_CHECK(cb.send_buffer, "pipeline: no send_buffer callback");
        const std::span<const float> buf = cb.send_buffer(a);
        in_flight.push_back(
            {a, pp.isend(buf.data(), int64_t(buf.size()), a.peer, tag_base + pipeline_p2p_tag(spec, stage, a))});
        break;
      }
      case PipeOp::RecvForward:
      case PipeOp::RecvBackward: {
        FOLDMOE_CHECK(cb.recv_buffer, "pipeline: no recv_buffer callback");
        const std::span<float> buf = cb.recv_buffer(a);
        pp.recv(buf.data(), int64_t(buf.size()), a.peer, tag_base + pipeline_p2p_tag(spec, stage, a));
        break;
      }
    }
  }
  while (!in_flight.empty()) finish(0, true);
}

void run_pipeline_step(const PipeScheduleSpec& spec, Communicator& pp, const PipelineCallbacks& cb, int tag_base) {
  run_pipeline_actions(spec, pp.rank(), pipeline_schedule(spec, pp.rank()), pp, cb, tag_base);
}

}  // namespace foldmoe
