// Pipeline schedules (docs/pipeline.md §6.3–6.4, docs/dense-parallel.md §12; docs/topology.md §5 L14): exact tables, warm-up formulas, and a
// simulator that executes every stage's action list together with matched sends and receives.
#include "parallel/pipeline_schedule.h"

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/check.h"

namespace foldmoe {
namespace {

std::vector<PipeAction> compute_only(const std::vector<PipeAction>& a) {
  std::vector<PipeAction> out;
  for (const PipeAction& x : a)
    if (x.is_compute()) out.push_back(x);
  return out;
}

// "F0c0 F1c0 ..." of the compute actions, in the spec's notation.
std::string compute_string(const PipeScheduleSpec& s, int stage) {
  return to_string(pipeline_compute_schedule(s, stage), s.vpp);
}

TEST(PipelineSchedule, OneF1BTableOfSpec63) {
  const PipeScheduleSpec s{.pp = 4, .micro_batches = 6};
  const char* want[] = {
      "F0 F1 F2 F3 B0 F4 B1 F5 B2 B3 B4 B5",
      "F0 F1 F2 B0 F3 B1 F4 B2 F5 B3 B4 B5",
      "F0 F1 B0 F2 B1 F3 B2 F4 B3 F5 B4 B5",
      "F0 B0 F1 B1 F2 B2 F3 B3 F4 B4 F5 B5",
  };
  const int want_w[] = {3, 2, 1, 0};
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(compute_string(s, r), want[r]) << "stage " << r;
    EXPECT_EQ(pipeline_warmup(s, r), want_w[r]);
    // The full schedule's compute actions are the compute schedule in the same order.
    EXPECT_EQ(compute_only(pipeline_schedule(s, r)), pipeline_compute_schedule(s, r));
  }
}

TEST(PipelineSchedule, SingleStageRunsForwardBackwardInOrder) {
  const PipeScheduleSpec s{.pp = 1, .micro_batches = 3};
  EXPECT_EQ(to_string(pipeline_schedule(s, 0)), "F0 B0 F1 B1 F2 B2");
  EXPECT_EQ(pipeline_warmup(s, 0), 0);
}

TEST(PipelineSchedule, InterleavedExampleOfSpec64) {
  const PipeScheduleSpec s{.pp = 2, .micro_batches = 4, .vpp = 2, .group = 2};
  const std::vector<std::pair<int, int>> table = {{0, 0}, {1, 0}, {0, 1}, {1, 1}, {2, 0}, {3, 0}, {2, 1}, {3, 1}};
  EXPECT_EQ(pipeline_interleaved_table(s), table);
  EXPECT_EQ(pipeline_warmup(s, 0), 4);
  EXPECT_EQ(pipeline_warmup(s, 1), 2);
  EXPECT_EQ(compute_string(s, 0), "F0c0 F1c0 F0c1 F1c1 F2c0 B0c1 F3c0 B1c1 F2c1 B0c0 F3c1 B1c0 B2c1 B3c1 B2c0 B3c0");
  EXPECT_EQ(compute_string(s, 1), "F0c0 F1c0 F0c1 B0c1 F1c1 B1c1 F2c0 B0c0 F3c0 B1c0 F2c1 B2c1 F3c1 B3c1 B2c0 B3c0");
  // Group size defaults to pp.
  EXPECT_EQ(pipeline_interleaved_table(PipeScheduleSpec{.pp = 2, .micro_batches = 4, .vpp = 2}), table);
}

TEST(PipelineSchedule, UpstreamInterleavedExampleM5G3) {
  const PipeScheduleSpec s{.pp = 2, .micro_batches = 5, .vpp = 2, .group = 3};
  std::vector<int> mb, ch;
  for (auto [m, c] : pipeline_interleaved_table(s)) mb.push_back(m), ch.push_back(c);
  EXPECT_EQ(mb, (std::vector<int>{0, 1, 2, 0, 1, 2, 3, 4, 3, 4}));
  EXPECT_EQ(ch, (std::vector<int>{0, 0, 0, 1, 1, 1, 0, 0, 1, 1}));
  EXPECT_EQ(pipeline_warmup(s, 0), 5);
  EXPECT_EQ(pipeline_warmup(s, 1), 3);
}

TEST(PipelineSchedule, WarmupFormulas) {
  for (int pp : {2, 4})
    for (int v : {1, 2})
      for (int M : {pp, pp * 2, pp * 3, 1, 2, 7}) {
        const PipeScheduleSpec s{.pp = pp, .micro_batches = M, .vpp = v};
        if (v > 1 && (M < pp || M % pp != 0)) continue;  // L14 with g = pp
        for (int r = 0; r < pp; ++r) {
          const int want = v == 1 ? std::min(pp - r - 1, M) : std::min(2 * (pp - r - 1) + (v - 1) * pp, M * v);
          EXPECT_EQ(pipeline_warmup(s, r), want) << "pp " << pp << " v " << v << " M " << M << " r " << r;
          // The compute list starts with exactly W forwards, then alternates, then ends with backwards.
          const std::vector<PipeAction> c = pipeline_compute_schedule(s, r);
          const int total = M * v;
          ASSERT_EQ(int(c.size()), 2 * total);
          for (int k = 0; k < want; ++k) EXPECT_EQ(c[size_t(k)].op, PipeOp::Forward);
          for (int i = 0; i < total - want; ++i) {
            EXPECT_EQ(c[size_t(want + 2 * i)].op, PipeOp::Forward);
            EXPECT_EQ(c[size_t(want + 2 * i + 1)].op, PipeOp::Backward);
          }
          for (int k = 2 * total - want; k < 2 * total; ++k) EXPECT_EQ(c[size_t(k)].op, PipeOp::Backward);
        }
      }
}

std::string error_of(const PipeScheduleSpec& s) {
  try {
    validate_pipeline_schedule(s);
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(PipelineSchedule, InvalidGroupRejectedWithL14) {
  // g < pp, g > M, M mod g neither 0 nor >= pp.
  for (auto [pp, M, g] :
       std::vector<std::tuple<int, int, int>>{{4, 8, 2}, {2, 3, 4}, {2, 5, 4}, {4, 6, 4}, {2, 3, 0}, {4, 2, 0}}) {
    const std::string e = error_of({.pp = pp, .micro_batches = M, .vpp = 2, .group = g});
    EXPECT_NE(e.find("layout error L14:"), std::string::npos) << pp << " " << M << " " << g << ": " << e;
    EXPECT_NE(e.find("  fix: "), std::string::npos) << e;
    EXPECT_NE(e.find(fmt::format("M = {}", M)), std::string::npos) << e;
    EXPECT_NE(e.find(fmt::format("pp = {}", pp)), std::string::npos) << e;
    EXPECT_THROW(pipeline_schedule({.pp = pp, .micro_batches = M, .vpp = 2, .group = g}, 0), UserError);
  }
  // Valid: M mod g = 0, or M mod g >= pp; v = 1 ignores g.
  EXPECT_EQ(error_of({.pp = 2, .micro_batches = 5, .vpp = 2, .group = 3}), "");
  EXPECT_EQ(error_of({.pp = 4, .micro_batches = 8, .vpp = 2, .group = 4}), "");
  EXPECT_EQ(error_of({.pp = 2, .micro_batches = 6, .vpp = 3, .group = 6}), "");
  EXPECT_EQ(error_of({.pp = 4, .micro_batches = 3, .vpp = 1, .group = 2}), "");
  // vpp > 1 with pp = 1 is L12.
  EXPECT_NE(error_of({.pp = 1, .micro_batches = 4, .vpp = 2}).find("layout error L12:"), std::string::npos);
}

// ---- Simulator ---------------------------------------------------------------------------------

enum class P2pMode { Rendezvous, Buffered };

struct SimResult {
  bool deadlock = false;
  std::string error;              // first violated rule ("" if none)
  std::vector<int> max_inflight;  // per stage: max (mb, chunk) forwarded and not yet backwarded
};

// Executes every stage's list together. Rendezvous: a send and its receive complete together, only
// when both stages are at them (blocking synchronous p2p, the strictest semantics). Buffered: a send
// completes at once and a receive waits for its message. A send is matched by the peer's receive of
// the same (micro-batch, chunk pair, direction). Also checks data dependencies of every compute.
SimResult simulate(const PipeScheduleSpec& s, const std::vector<std::vector<PipeAction>>& lists, P2pMode mode) {
  const int pp = s.pp, v = s.vpp;
  SimResult res;
  res.max_inflight.assign(size_t(pp), 0);
  std::vector<size_t> pc(size_t(pp), 0);
  std::vector<int> inflight(size_t(pp), 0);
  // (stage, dir, mb, chunk): input received for that compute; computes done.
  std::set<std::tuple<int, int, int, int>> got_input, done;
  // Buffered messages: (from, to, dir, mb, from_chunk, to_chunk).
  std::multiset<std::tuple<int, int, int, int, int, int>> mailbox;
  auto fail = [&](std::string e) {
    if (res.error.empty()) res.error = std::move(e);
  };
  auto needs_input = [&](int r, bool fwd, int c) {
    if (fwd) return !(r == 0 && c == 0);
    return !(r == pp - 1 && c == v - 1);
  };
  auto expected_peer = [&](int r, bool fwd_dir, bool is_recv, int c) -> std::pair<int, int> {
    // Receiving forward: from the previous virtual stage; sending forward: to the next.
    const int vs = c * pp + r;
    const int other = (fwd_dir == is_recv) ? vs - 1 : vs + 1;
    if (other < 0 || other >= pp * v) return {-1, -1};
    return {other % pp, other / pp};
  };
  auto check_p2p = [&](int r, const PipeAction& a) {
    const auto [p, pc_] = expected_peer(r, a.is_forward_direction(), a.is_recv(), a.chunk);
    if (p != a.peer || pc_ != a.peer_chunk) fail(fmt::format("stage {}: {} has the wrong peer", r, to_string(a, v)));
    if (a.is_send() && !done.count({r, a.is_forward_direction() ? 0 : 1, a.microbatch, a.chunk}))
      fail(fmt::format("stage {}: {} sends before computing", r, to_string(a, v)));
  };
  auto complete_recv = [&](int r, const PipeAction& a) {
    const int dir = a.is_forward_direction() ? 0 : 1;
    if (!got_input.insert({r, dir, a.microbatch, a.chunk}).second)
      fail(fmt::format("stage {}: {} received twice", r, to_string(a, v)));
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (int r = 0; r < pp; ++r) {
      while (pc[size_t(r)] < lists[size_t(r)].size()) {
        const PipeAction& a = lists[size_t(r)][pc[size_t(r)]];
        const int dir = a.is_forward_direction() ? 0 : 1;
        if (a.is_compute()) {
          const bool fwd = a.op == PipeOp::Forward;
          if (needs_input(r, fwd, a.chunk) && !got_input.count({r, dir, a.microbatch, a.chunk}))
            fail(fmt::format("stage {}: {} runs without its input", r, to_string(a, v)));
          if (!fwd && !done.count({r, 0, a.microbatch, a.chunk}))
            fail(fmt::format("stage {}: {} before its forward", r, to_string(a, v)));
          if (!done.insert({r, dir, a.microbatch, a.chunk}).second)
            fail(fmt::format("stage {}: {} computed twice", r, to_string(a, v)));
          inflight[size_t(r)] += fwd ? 1 : -1;
          res.max_inflight[size_t(r)] = std::max(res.max_inflight[size_t(r)], inflight[size_t(r)]);
        } else if (mode == P2pMode::Buffered) {
          check_p2p(r, a);
          if (a.is_send()) {
            mailbox.insert({r, a.peer, dir, a.microbatch, a.chunk, a.peer_chunk});
          } else {
            auto it = mailbox.find({a.peer, r, dir, a.microbatch, a.peer_chunk, a.chunk});
            if (it == mailbox.end()) break;  // wait
            mailbox.erase(it);
            complete_recv(r, a);
          }
        } else {
          // Rendezvous: only completes together with the peer's matching action.
          const int q = a.peer;
          if (q < 0 || q >= pp || pc[size_t(q)] >= lists[size_t(q)].size()) break;
          const PipeAction& b = lists[size_t(q)][pc[size_t(q)]];
          const PipeOp want = a.op == PipeOp::SendForward    ? PipeOp::RecvForward
                              : a.op == PipeOp::RecvForward  ? PipeOp::SendForward
                              : a.op == PipeOp::SendBackward ? PipeOp::RecvBackward
                                                             : PipeOp::SendBackward;
          if (!(b.op == want && b.peer == r && b.microbatch == a.microbatch && b.chunk == a.peer_chunk &&
                b.peer_chunk == a.chunk))
            break;
          check_p2p(r, a);
          check_p2p(q, b);
          complete_recv(a.is_recv() ? r : q, a.is_recv() ? a : b);
          ++pc[size_t(q)];
        }
        ++pc[size_t(r)];
        progress = true;
      }
    }
  }
  for (int r = 0; r < pp; ++r)
    if (pc[size_t(r)] < lists[size_t(r)].size()) {
      res.deadlock = true;
      fail(fmt::format("deadlock: stage {} stuck at {}", r, to_string(lists[size_t(r)][pc[size_t(r)]], v)));
    }
  if (!mailbox.empty()) fail(fmt::format("{} sent messages never received", mailbox.size()));
  // Every (mb, chunk) forwarded and backwarded exactly once per stage.
  for (int r = 0; r < pp; ++r)
    for (int m = 0; m < s.micro_batches; ++m)
      for (int c = 0; c < v; ++c)
        for (int d = 0; d < 2; ++d)
          if (!done.count({r, d, m, c}))
            fail(fmt::format("stage {}: {} of mb {} chunk {} never ran", r, d ? "backward" : "forward", m, c));
  return res;
}

std::vector<PipeScheduleSpec> simulated_specs() {
  std::vector<PipeScheduleSpec> out;
  for (int pp : {2, 3, 4})
    for (int v : {1, 2})
      for (int M = pp; M <= 3 * pp; ++M) {
        if (v == 1) {
          out.push_back({.pp = pp, .micro_batches = M, .vpp = 1});
          continue;
        }
        // Every valid group size for this M.
        for (int g = pp; g <= M; ++g)
          if (M % g == 0 || M % g >= pp) out.push_back({.pp = pp, .micro_batches = M, .vpp = v, .group = g});
      }
  out.push_back({.pp = 2, .micro_batches = 6, .vpp = 3, .group = 2});
  out.push_back({.pp = 4, .micro_batches = 8, .vpp = 4, .group = 4});
  out.push_back({.pp = 4, .micro_batches = 2, .vpp = 1});  // M < pp
  out.push_back({.pp = 1, .micro_batches = 3, .vpp = 1});
  return out;
}

std::string spec_name(const PipeScheduleSpec& s) {
  return fmt::format("pp {} M {} v {} g {}", s.pp, s.micro_batches, s.vpp, s.g());
}

TEST(PipelineSchedule, SimulatorNoDeadlockEveryReceiveMatched) {
  int n = 0;
  for (const PipeScheduleSpec& s : simulated_specs()) {
    const std::vector<std::vector<PipeAction>> lists = pipeline_schedules(s);
    for (P2pMode mode : {P2pMode::Rendezvous, P2pMode::Buffered}) {
      const SimResult r = simulate(s, lists, mode);
      EXPECT_FALSE(r.deadlock) << spec_name(s);
      EXPECT_EQ(r.error, "") << spec_name(s) << (mode == P2pMode::Rendezvous ? " rendezvous" : " buffered");
    }
    for (int st = 0; st < s.pp; ++st) {
      EXPECT_EQ(compute_only(lists[size_t(st)]), pipeline_compute_schedule(s, st)) << spec_name(s);
      EXPECT_EQ(pipeline_schedule(s, st), lists[size_t(st)]) << spec_name(s);
    }
    ++n;
  }
  EXPECT_GT(n, 30);
}

TEST(PipelineSchedule, SimulatorDetectsDeadlockAndUnmatchedSends) {
  // The naive placement (send right after each compute, receive right before) deadlocks 1F1B
  // under blocking synchronous p2p: stage 0 sends F then waits for B while stage 1 sends B.
  const PipeScheduleSpec s{.pp = 2, .micro_batches = 4};
  std::vector<std::vector<PipeAction>> naive(2);
  for (int r = 0; r < 2; ++r)
    for (const PipeAction& a : pipeline_compute_schedule(s, r)) {
      const bool f = a.op == PipeOp::Forward;
      if (f && r == 1) naive[1].push_back({PipeOp::RecvForward, a.microbatch, 0, 0, 0});
      if (!f && r == 0) naive[0].push_back({PipeOp::RecvBackward, a.microbatch, 0, 1, 0});
      naive[size_t(r)].push_back(a);
      if (f && r == 0) naive[0].push_back({PipeOp::SendForward, a.microbatch, 0, 1, 0});
      if (!f && r == 1) naive[1].push_back({PipeOp::SendBackward, a.microbatch, 0, 0, 0});
    }
  EXPECT_TRUE(simulate(s, naive, P2pMode::Rendezvous).deadlock);
  EXPECT_EQ(simulate(s, naive, P2pMode::Buffered).error, "");  // fine with buffered sends
  // Dropping a receive leaves a message unmatched (buffered) / a deadlock (rendezvous).
  std::vector<std::vector<PipeAction>> lists = pipeline_schedules(s);
  for (size_t i = 0; i < lists[1].size(); ++i)
    if (lists[1][i].op == PipeOp::RecvForward) {
      lists[1].erase(lists[1].begin() + long(i));
      break;
    }
  EXPECT_NE(simulate(s, lists, P2pMode::Buffered).error, "");
  EXPECT_TRUE(simulate(s, lists, P2pMode::Rendezvous).deadlock);
}

TEST(PipelineSchedule, EachMicroBatchChunkOnceBackwardAfterForward) {
  for (const PipeScheduleSpec& s : simulated_specs())
    for (int r = 0; r < s.pp; ++r) {
      std::map<std::tuple<int, int, int>, int> pos;  // (dir, mb, chunk) -> index
      const std::vector<PipeAction> c = pipeline_compute_schedule(s, r);
      for (size_t i = 0; i < c.size(); ++i) {
        const auto key = std::make_tuple(c[i].op == PipeOp::Forward ? 0 : 1, c[i].microbatch, c[i].chunk);
        EXPECT_TRUE(pos.emplace(key, int(i)).second)
            << spec_name(s) << " stage " << r << " repeats " << to_string(c[i], s.vpp);
      }
      EXPECT_EQ(int(pos.size()), 2 * s.micro_batches * s.vpp) << spec_name(s);
      for (int m = 0; m < s.micro_batches; ++m)
        for (int ch = 0; ch < s.vpp; ++ch)
          EXPECT_LT(pos[std::make_tuple(0, m, ch)], pos[std::make_tuple(1, m, ch)])
              << spec_name(s) << " stage " << r << " mb " << m << " chunk " << ch;
    }
}

TEST(PipelineSchedule, InFlightMicroBatchesBoundedByWarmup) {
  for (const PipeScheduleSpec& s : simulated_specs()) {
    const SimResult r = simulate(s, pipeline_schedules(s), P2pMode::Rendezvous);
    for (int st = 0; st < s.pp; ++st) {
      const int W = pipeline_warmup(s, st);
      EXPECT_LE(r.max_inflight[size_t(st)], W + 1) << spec_name(s) << " stage " << st;
      EXPECT_EQ(r.max_inflight[size_t(st)], std::min(W + 1, s.micro_batches * s.vpp))
          << spec_name(s) << " stage " << st;
    }
  }
}

TEST(PipelineSchedule, P2pTagsMatchAcrossStagesAndAreUnique) {
  for (const PipeScheduleSpec& s : simulated_specs()) {
    const std::vector<std::vector<PipeAction>> lists = pipeline_schedules(s);
    std::multiset<std::tuple<int, int, int>> sends, recvs;  // (from, to, tag)
    std::set<int> send_tags;
    for (int r = 0; r < s.pp; ++r)
      for (const PipeAction& a : lists[size_t(r)]) {
        if (a.is_compute()) continue;
        const int tag = pipeline_p2p_tag(s, r, a);
        EXPECT_GE(tag, 0);
        EXPECT_LT(tag, pipeline_p2p_tag_count(s));
        if (a.is_send()) {
          sends.insert({r, a.peer, tag});
          EXPECT_TRUE(send_tags.insert(tag).second) << spec_name(s) << " duplicate tag " << tag;
        } else {
          recvs.insert({a.peer, r, tag});
        }
      }
    EXPECT_EQ(sends, recvs) << spec_name(s);
  }
}

TEST(PipelineSchedule, PlacedExampleReadsNaturally) {
  // PP 2, M 2: stage 0 sends each activation to stage 1 and receives gradients back.
  const std::vector<std::vector<PipeAction>> l = pipeline_schedules({.pp = 2, .micro_batches = 2});
  EXPECT_EQ(to_string(compute_only(l[0])), "F0 F1 B0 B1");
  EXPECT_EQ(to_string(compute_only(l[1])), "F0 B0 F1 B1");
  for (const char* want : {"SF0>1", "SF1>1", "RB0<1", "RB1<1"})
    EXPECT_NE(to_string(l[0]).find(want), std::string::npos) << to_string(l[0]);
  for (const char* want : {"RF0<0", "RF1<0", "SB0>0", "SB1>0"})
    EXPECT_NE(to_string(l[1]).find(want), std::string::npos) << to_string(l[1]);
}

}  // namespace
}  // namespace foldmoe
