#include "core/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>

namespace foldmoe::trace {

namespace {

thread_local std::array<double, kNumPhases> tl_seconds{};
std::atomic<bool> g_recording{false};
std::mutex g_mutex;
std::vector<Event> g_events;

int64_t micros(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

// Name and Chrome-trace category of each phase, in Phase order.
struct PhaseInfo {
  const char* name;
  const char* category;
};
constexpr std::array<PhaseInfo, kNumPhases> kPhases = {{{"data", "data"},
                                                        {"forward", "compute"},
                                                        {"backward", "compute"},
                                                        {"optimizer", "optimizer"},
                                                        {"eval", "eval"},
                                                        {"checkpoint", "checkpoint"}}};

const char* phase_category(Phase p) {
  return p < Phase::kCount ? kPhases[size_t(p)].category : "other";
}

}  // namespace

const char* phase_name(Phase p) {
  return p < Phase::kCount ? kPhases[size_t(p)].name : "?";
}

PhaseSeconds take_phase_seconds() {
  const PhaseSeconds out = tl_seconds;
  tl_seconds = {};
  return out;
}

void add_phase_seconds(const PhaseSeconds& s) {
  for (size_t i = 0; i < s.size(); ++i) tl_seconds[i] += s[i];
}

void begin_recording() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_events.clear();
  g_recording = true;
}

std::vector<Event> end_recording() {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_recording = false;
  return std::exchange(g_events, {});
}

bool recording() {
  return g_recording.load(std::memory_order_relaxed);
}

void record(std::string name, std::string category, std::chrono::system_clock::time_point start,
            std::chrono::system_clock::time_point end) {
  if (!recording()) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_events.push_back(
      {std::move(name), std::move(category), micros(start), std::max<int64_t>(micros(end) - micros(start), 0)});
}

PhaseScope::PhaseScope(Phase p, std::string label)
    : phase_(p), label_(std::move(label)), t0_(std::chrono::steady_clock::now()) {
  if (recording()) wall0_ = std::chrono::system_clock::now();
}

PhaseScope::~PhaseScope() {
  tl_seconds[size_t(phase_)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
  if (recording() && wall0_.time_since_epoch().count() != 0)
    record(label_.empty() ? phase_name(phase_) : label_, phase_category(phase_), wall0_,
           std::chrono::system_clock::now());
}

std::string chrome_trace_json(const std::vector<std::vector<Event>>& events_per_rank, int64_t step) {
  int64_t origin = std::numeric_limits<int64_t>::max();
  for (const auto& evs : events_per_rank)
    for (const Event& e : evs) origin = std::min(origin, e.start_us);
  if (origin == std::numeric_limits<int64_t>::max()) origin = 0;
  nlohmann::ordered_json events = nlohmann::ordered_json::array();
  for (size_t r = 0; r < events_per_rank.size(); ++r) {
    // Name each rank's row in the viewer.
    events.push_back({{"name", "process_name"},
                      {"ph", "M"},
                      {"pid", r},
                      {"tid", 0},
                      {"args", {{"name", fmt::format("rank {}", r)}}}});
    for (const Event& e : events_per_rank[r])
      events.push_back({{"name", e.name},
                        {"cat", e.category},
                        {"ph", "X"},
                        {"ts", e.start_us - origin},
                        {"dur", e.duration_us},
                        {"pid", r},
                        {"tid", 0}});
  }
  nlohmann::ordered_json doc;
  doc["traceEvents"] = std::move(events);
  doc["displayTimeUnit"] = "ms";
  doc["otherData"] = {{"producer", "foldmoe"}, {"step", step}};
  return doc.dump(1) + "\n";
}

std::string serialize(const std::vector<Event>& events) {
  nlohmann::json a = nlohmann::json::array();
  for (const Event& e : events) a.push_back({e.name, e.category, e.start_us, e.duration_us});
  return a.dump();
}

std::vector<Event> deserialize(const std::string& text) {
  std::vector<Event> out;
  for (const auto& row : nlohmann::json::parse(text))
    out.push_back({row.at(0).get<std::string>(), row.at(1).get<std::string>(), row.at(2).get<int64_t>(),
                   row.at(3).get<int64_t>()});
  return out;
}

}  // namespace foldmoe::trace
