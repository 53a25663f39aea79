#include "parallel/pipeline_schedule.h"

#include <fmt/format.h>

#include <algorithm>

#include "config/layout_rules.h"
#include "config/problems.h"
#include "core/check.h"

namespace foldmoe {

namespace {

// Where the input of a compute action comes from (peer < 0: no transfer needed).
struct Source {
  int peer = -1, peer_chunk = -1;
};

Source forward_source(const PipeScheduleSpec& s, int stage, int chunk) {
  if (stage > 0) return {stage - 1, chunk};
  if (chunk > 0) return {s.pp - 1, chunk - 1};
  return {};
}

Source backward_source(const PipeScheduleSpec& s, int stage, int chunk) {
  if (stage < s.pp - 1) return {stage + 1, chunk};
  if (chunk < s.vpp - 1) return {0, chunk + 1};
  return {};
}

}  // namespace

void validate_pipeline_schedule(const PipeScheduleSpec& s) {
  // Config validation has checked these on every path that reaches a schedule (docs/rules.md).
  FOLDMOE_CHECK(s.pp >= 1 && s.vpp >= 1 && s.micro_batches >= 1, "pipeline schedule pp={} vpp={} M={}", s.pp,
                s.vpp, s.micro_batches);
  Problems p;
  if (interleaving_has_stages(s.pp, s.vpp, p))
    interleave_group_rule(s.pp, s.vpp, s.micro_batches, s.g(), "the schedule's micro-batches", p);
  p.raise();
}

std::vector<std::pair<int, int>> pipeline_interleaved_table(const PipeScheduleSpec& s) {
  validate_pipeline_schedule(s);
  const int M = s.micro_batches, v = s.vpp;
  const int g = v > 1 ? s.g() : M;
  std::vector<std::pair<int, int>> t;
  t.reserve(size_t(M * v));
  for (int start = 0; start < M; start += g) {
    // The last group takes all remaining micro-batches (M mod g of them when g does not divide M).
    const int end = std::min(start + g, M);
    for (int c = 0; c < v; ++c)
      for (int m = start; m < end; ++m) t.emplace_back(m, c);
  }
  FOLDMOE_CHECK(int(t.size()) == M * v, "interleaved table has {} entries, want {}", t.size(), M * v);
  return t;
}

int pipeline_warmup(const PipeScheduleSpec& s, int stage) {
  validate_pipeline_schedule(s);
  FOLDMOE_CHECK(stage >= 0 && stage < s.pp, "stage {} out of range (pp {})", stage, s.pp);
  const int M = s.micro_batches, pp = s.pp, v = s.vpp;
  if (v == 1) return std::min(pp - stage - 1, M);
  return std::min(2 * (pp - stage - 1) + (v - 1) * s.g(), M * v);
}

std::vector<PipeAction> pipeline_compute_schedule(const PipeScheduleSpec& s, int stage) {
  const std::vector<std::pair<int, int>> table = pipeline_interleaved_table(s);
  const int W = pipeline_warmup(s, stage);
  const int total = int(table.size());
  const int v = s.vpp;
  auto fwd = [&](int k) { return PipeAction{PipeOp::Forward, table[size_t(k)].first, table[size_t(k)].second}; };
  auto bwd = [&](int k) {
    return PipeAction{PipeOp::Backward, table[size_t(k)].first, v - 1 - table[size_t(k)].second};
  };
  std::vector<PipeAction> out;
  out.reserve(size_t(2 * total));
  for (int k = 0; k < W; ++k) out.push_back(fwd(k));
  for (int i = 0; i < total - W; ++i) {
    out.push_back(fwd(W + i));
    out.push_back(bwd(i));
  }
  for (int k = total - W; k < total; ++k) out.push_back(bwd(k));
  return out;
}

std::vector<std::vector<PipeAction>> pipeline_schedules(const PipeScheduleSpec& s) {
  validate_pipeline_schedule(s);
  const int pp = s.pp, v = s.vpp, M = s.micro_batches;
  std::vector<std::vector<PipeAction>> comp(static_cast<size_t>(pp)), out(static_cast<size_t>(pp));
  for (int r = 0; r < pp; ++r) comp[size_t(r)] = pipeline_compute_schedule(s, r);
  // produced[dir][stage][chunk][mb]: lock-step at which the compute finished (-1: not yet).
  // received[...]: the input of that compute has been transferred.
  auto idx = [&](int stage, int chunk, int mb) { return size_t((stage * v + chunk) * M + mb); };
  std::vector<int> produced[2] = {std::vector<int>(size_t(pp * v * M), -1), std::vector<int>(size_t(pp * v * M), -1)};
  std::vector<size_t> next(size_t(pp), 0);
  size_t remaining = 0;
  for (const auto& c : comp) remaining += c.size();
  for (int step = 0; remaining > 0; ++step) {
    // Phase 1: transfers, each placed at once on both sides (one global order).
    std::vector<bool> ready(size_t(pp), false);
    for (int r = 0; r < pp; ++r) {
      if (next[size_t(r)] >= comp[size_t(r)].size()) continue;
      const PipeAction& a = comp[size_t(r)][next[size_t(r)]];
      const bool f = a.op == PipeOp::Forward;
      if (!f)
        FOLDMOE_CHECK(produced[0][idx(r, a.chunk, a.microbatch)] >= 0,
                      "stage {}: backward of mb {} chunk {} before its forward", r, a.microbatch, a.chunk);
      const Source src = f ? forward_source(s, r, a.chunk) : backward_source(s, r, a.chunk);
      if (src.peer < 0) {
        ready[size_t(r)] = true;
        continue;
      }
      const int when = produced[f ? 0 : 1][idx(src.peer, src.peer_chunk, a.microbatch)];
      if (when < 0 || when >= step) continue;
      out[size_t(src.peer)].push_back(
          PipeAction{f ? PipeOp::SendForward : PipeOp::SendBackward, a.microbatch, src.peer_chunk, r, a.chunk});
      out[size_t(r)].push_back(
          PipeAction{f ? PipeOp::RecvForward : PipeOp::RecvBackward, a.microbatch, a.chunk, src.peer, src.peer_chunk});
      ready[size_t(r)] = true;
    }
    // Phase 2: computes.
    bool progress = false;
    for (int r = 0; r < pp; ++r) {
      if (!ready[size_t(r)]) continue;
      const PipeAction a = comp[size_t(r)][next[size_t(r)]++];
      out[size_t(r)].push_back(a);
      produced[a.op == PipeOp::Forward ? 0 : 1][idx(r, a.chunk, a.microbatch)] = step;
      --remaining;
      progress = true;
    }
    FOLDMOE_CHECK(progress || remaining == 0, "pipeline schedule (pp {}, M {}, vpp {}, g {}) deadlocks at lock-step {}",
                  pp, M, v, s.g(), step);
    FOLDMOE_CHECK(step < 4 * (2 * M * v * pp + 4), "pipeline schedule simulation does not terminate");
  }
  return out;
}

std::vector<PipeAction> pipeline_schedule(const PipeScheduleSpec& s, int stage) {
  FOLDMOE_CHECK(stage >= 0 && stage < s.pp, "stage {} out of range (pp {})", stage, s.pp);
  return pipeline_schedules(s)[size_t(stage)];
}

int pipeline_p2p_tag_count(const PipeScheduleSpec& s) {
  return s.micro_batches * s.pp * s.vpp * 2;
}

int pipeline_p2p_tag(const PipeScheduleSpec& s, int stage, const PipeAction& a) {
  FOLDMOE_CHECK(!a.is_compute(), "pipeline_p2p_tag of a compute action");
  const int consumer_stage = a.is_send() ? a.peer : stage;
  const int consumer_chunk = a.is_send() ? a.peer_chunk : a.chunk;
  const int vstage = consumer_chunk * s.pp + consumer_stage;
  const int dir = a.is_forward_direction() ? 0 : 1;
  return (a.microbatch * s.pp * s.vpp + vstage) * 2 + dir;
}

std::string to_string(const PipeAction& a, int vpp) {
  static const char* names[] = {"F", "B", "RF", "SF", "RB", "SB"};
  std::string out = fmt::format("{}{}", names[int(a.op)], a.microbatch);
  if (vpp > 1) out += fmt::format("c{}", a.chunk);
  if (a.is_send()) out += fmt::format(">{}", a.peer);
  if (a.is_recv()) out += fmt::format("<{}", a.peer);
  return out;
}

std::string to_string(const std::vector<PipeAction>& actions, int vpp) {
  std::string out;
  for (const PipeAction& a : actions) {
    if (!out.empty()) out += ' ';
    out += to_string(a, vpp);
  }
  return out;
}

}  // namespace foldmoe
