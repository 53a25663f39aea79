#include "core/fault_inject.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/check.h"
#include "core/launch_env.h"

namespace foldmoe {
namespace {

int64_t parse_number(std::string_view key, std::string_view v, std::string_view text) {
  int64_t n = 0;
  if (v.empty() || v.size() > 12) user_error("FOLDMOE_FAULT_INJECT=\"{}\": {} needs a non-negative integer", text, key);
  for (char c : v) {
    if (c < '0' || c > '9') user_error("FOLDMOE_FAULT_INJECT=\"{}\": {} needs a non-negative integer", text, key);
    n = n * 10 + (c - '0');
  }
  return n;
}

const std::optional<FaultSpec>& configured() {
  static const std::optional<FaultSpec> spec = []() -> std::optional<FaultSpec> {
    const char* v = std::getenv("FOLDMOE_FAULT_INJECT");
    if (v == nullptr || *v == '\0') return std::nullopt;
    return parse_fault_spec(v);
  }();
  return spec;
}

}  // namespace

FaultSpec parse_fault_spec(std::string_view text) {
  FaultSpec s;
  bool have_rank = false;
  size_t i = 0;
  while (i <= text.size()) {
    size_t j = text.find(',', i);
    if (j == std::string_view::npos) j = text.size();
    const std::string_view item = text.substr(i, j - i);
    const size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      user_error("FOLDMOE_FAULT_INJECT=\"{}\": \"{}\" is not key=value (test seam: rank=R,phase=P[,step=N][,kind=K])",
                 text, item);
    const std::string_view key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "rank") {
      s.rank = int(parse_number(key, value, text));
      have_rank = true;
    } else if (key == "phase") {
      s.phase = std::string(value);
    } else if (key == "step") {
      s.step = parse_number(key, value, text);
    } else if (key == "kind") {
      s.kind = std::string(value);
    } else {
      user_error("FOLDMOE_FAULT_INJECT=\"{}\": unknown key \"{}\" (use rank, phase, step, kind)", text, key);
    }
    i = j + 1;
  }
  if (!have_rank || s.phase.empty())
    user_error("FOLDMOE_FAULT_INJECT=\"{}\" needs rank= and phase= (e.g. rank=2,phase=step,step=3)", text);
  if (s.phase != "startup" && s.phase != "data" && s.phase != "step" && s.phase != "save" && s.phase != "write")
    user_error("FOLDMOE_FAULT_INJECT=\"{}\": phase \"{}\" is not one of startup | data | step | save | write", text,
               s.phase);
  if (s.kind != "error" && s.kind != "hang")
    user_error("FOLDMOE_FAULT_INJECT=\"{}\": kind \"{}\" is not one of error | hang", text, s.kind);
  return s;
}

void inject_fault(std::string_view phase, int64_t step) {
  const std::optional<FaultSpec>& spec = configured();
  if (!spec || spec->phase != phase || spec->rank != launch_env().rank) return;
  if (spec->step && *spec->step != step) return;
  if (spec->kind == "hang") {
    std::fprintf(stderr, "foldmoe: FOLDMOE_FAULT_INJECT: rank %d stops in phase %s (test seam)\n", spec->rank,
                 spec->phase.c_str());
    std::fflush(stderr);
    for (;;) std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  user_error("injected fault on rank {} in phase {}{} (FOLDMOE_FAULT_INJECT, a test seam)", spec->rank, phase,
             step >= 0 ? fmt::format(" at step {}", step) : std::string());
}

}  // namespace foldmoe
