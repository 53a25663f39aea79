#include "parallel/pipeline_executor.h"

#include "core/check.h"

namespace foldmoe {

void run_pipeline_actions(const PipeScheduleSpec& spec, int stage, const std::vector<PipeAction>& actions,
                          Communicator& pp, const PipelineCallbacks& cb, int tag_base) {
  FOLDMOE_CHECK(pp.size() == spec.pp, "pipeline communicator has {} members, the schedule {} stages", pp.size(),
                spec.pp);
  FOLDMOE_CHECK(pp.rank() == stage, "pipeline communicator rank {} runs the schedule of stage {}", pp.rank(), stage);
  for (const PipeAction& a : actions) {
    switch (a.op) {
      case PipeOp::Forward:
        FOLDMOE_CHECK(cb.forward, "pipeline: no forward callback");
        cb.forward(a.microbatch, a.chunk);
        break;
      case PipeOp::Backward:
        FOLDMOE_CHECK(cb.backward, "pipeline: no backward callback");
        cb.backward(a.microbatch, a.chunk);
        break;
      case PipeOp::SendForward:
      case PipeOp::SendBackward: {
        FOLDMOE_CHECK(cb.send_buffer, "pipeline: no send_buffer callback");
        const std::span<const float> buf = cb.send_buffer(a);
        pp.send(buf.data(), int64_t(buf.size()), a.peer, tag_base + pipeline_p2p_tag(spec, stage, a));
        if (cb.after_send) cb.after_send(a);
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
}

void run_pipeline_step(const PipeScheduleSpec& spec, Communicator& pp, const PipelineCallbacks& cb, int tag_base) {
  run_pipeline_actions(spec, pp.rank(), pipeline_schedule(spec, pp.rank()), pp, cb, tag_base);
}

}  // namespace foldmoe
