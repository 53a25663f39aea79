// Pipeline schedules (docs/pipeline.md §6.3–6.4, docs/topology.md §5 rule L14) as pure functions.
//
// A schedule is the ordered list of actions one pipeline stage executes in one training step:
// Forward/Backward of a (micro-batch, chunk) and the point-to-point transfers between stages.
// Virtual stage of (stage r, chunk c) = c·pp + r; the forward output of virtual stage s feeds
// virtual stage s+1 (chunk c of stage pp−1 feeds chunk c+1 of stage 0), gradients flow back.
//
// Placement of the transfers: every rank's list is the projection of ONE global order in which each
// send and its matching receive are a single event (built by simulating all stages in lock step;
// a transfer is placed when its consumer is about to compute). Hence executing the lists with
// blocking (even synchronous/rendezvous) send/recv, or with non-blocking pairs, cannot deadlock:
// the earliest unfinished event of the global order always has both its ranks waiting on it.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace foldmoe {

enum class PipeOp { Forward, Backward, RecvForward, SendForward, RecvBackward, SendBackward };

struct PipeAction {
  PipeOp op = PipeOp::Forward;
  int microbatch = 0;
  // Forward/Backward: the local chunk computed. Send*: the local chunk whose output (activation or
  // input gradient) is sent. Recv*: the local chunk that consumes what is received.
  int chunk = 0;
  int peer = -1;        // p2p only: the peer stage
  int peer_chunk = -1;  // p2p only: the peer's chunk (consumer of a send, producer of a receive)

  bool is_compute() const { return op == PipeOp::Forward || op == PipeOp::Backward; }
  bool is_send() const { return op == PipeOp::SendForward || op == PipeOp::SendBackward; }
  bool is_recv() const { return op == PipeOp::RecvForward || op == PipeOp::RecvBackward; }
  bool is_forward_direction() const {
    return op == PipeOp::Forward || op == PipeOp::RecvForward || op == PipeOp::SendForward;
  }
  bool operator==(const PipeAction&) const = default;
};

// Schedule inputs. group = micro-batch group size g of the interleaved schedule (0 = pp); ignored
// when vpp = 1.
struct PipeScheduleSpec {
  int pp = 1;
  int micro_batches = 1;  // M
  int vpp = 1;            // v virtual chunks per stage
  int group = 0;          // g (0 = pp)

  int g() const { return group > 0 ? group : pp; }
};

// Throws UserError for an impossible schedule: M < 1, pp < 1, vpp < 1, vpp > 1 with pp < 2 (L12),
// and the interleaved group rule L14: pp ≤ g ≤ M and (M mod g = 0 or M mod g ≥ pp). Every violation
// is listed, in the docs/topology.md §5 format.
void validate_pipeline_schedule(const PipeScheduleSpec& s);

// The interleaved table: virtual micro-batch k -> (micro-batch, chunk), M·v entries (for each
// group of g consecutive micro-batches, the last group taking all remaining ones; for chunk
// 0..v−1; for each micro-batch of the group). With v = 1 it is (0,0) (1,0) ... (M−1,0).
std::vector<std::pair<int, int>> pipeline_interleaved_table(const PipeScheduleSpec& s);

// Warm-up forwards of `stage`: v = 1: min(pp − r − 1, M); v > 1: min(2·(pp − r − 1) + (v − 1)·g, M·v).
int pipeline_warmup(const PipeScheduleSpec& s, int stage);

// Forward/Backward actions only (warm-up, steady 1F1B, cool-down), validated.
std::vector<PipeAction> pipeline_compute_schedule(const PipeScheduleSpec& s, int stage);

// The full schedule of `stage` with its Recv/Send actions placed (see the header comment).
std::vector<PipeAction> pipeline_schedule(const PipeScheduleSpec& s, int stage);
// All stages' full schedules at once ([stage] -> actions); pipeline_schedule(s, r) == this[r].
std::vector<std::vector<PipeAction>> pipeline_schedules(const PipeScheduleSpec& s);

// Tag of a transfer, equal on the sending and the receiving side: derived from the micro-batch, the
// consuming virtual stage and the direction. Unique within one step; < pipeline_p2p_tag_count(s).
int pipeline_p2p_tag(const PipeScheduleSpec& s, int stage, const PipeAction& a);
int pipeline_p2p_tag_count(const PipeScheduleSpec& s);

// "F3", "B0c1", "RF2c0<1" (receive forward of micro-batch 2 for chunk 0 from stage 1),
// "SB1c1>0"; chunk suffixes only when vpp > 1.
std::string to_string(const PipeAction& a, int vpp = 1);
std::string to_string(const std::vector<PipeAction>& actions, int vpp = 1);

}  // namespace foldmoe
