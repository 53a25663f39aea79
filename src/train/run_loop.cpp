#include "train/run_loop.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/check.h"
#include "core/memory_usage.h"
#include "core/fault_inject.h"
#include "core/timer.h"
#include "core/trace.h"
#include "train/memory_estimate.h"
#include "train/metrics.h"
#include "train/tensorboard.h"
#include "train/checkpoint_locator.h"
#include "train/checkpoint_retention.h"
#include "train/memory_estimate.h"
#include "train/metrics.h"
#include "train/stop_signals.h"

namespace foldmoe {

namespace {

// The row's "time_s": where the wall time since the previous row went (docs/observability.md §2).
// Phases nest as the code does (communication inside a forward counts in "forward"); "comm" is the
// trainer's own count of time inside collectives; "other" is the rest of the wall time.
void add_time_breakdown(nlohmann::ordered_json& record, const std::array<double, trace::kNumPhases>& phases,
                        double wall_s) {
  nlohmann::ordered_json t = nlohmann::ordered_json::object();
  double accounted = 0;
  for (int p = 0; p < trace::kNumPhases; ++p) {
    t[trace::phase_name(trace::Phase(p))] = phases[size_t(p)];
    accounted += phases[size_t(p)];
  }
  if (record.contains("comm_seconds")) t["comm"] = record["comm_seconds"];
  t["other"] = std::max(wall_s - accounted, 0.0);
  record["time_s"] = std::move(t);
}

void write_profile(const RunDirectory& dir, Communicator* world, bool lead, int64_t step,
                   const std::vector<trace::Event>& events, ProgressBar& bar) {
  const std::vector<std::string> texts = gather_text_at_lead(world, trace::serialize(events));
  if (!lead) return;
  std::vector<std::vector<trace::Event>> per_rank;
  for (const std::string& t : texts) per_rank.push_back(trace::deserialize(t));
  const std::filesystem::path path = dir.plan().run_dir / fmt::format("profile-step-{:08d}.json", step);
  const std::filesystem::path tmp = path.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << trace::chrome_trace_json(per_rank, step);
    if (!out.flush())
      user_error("cannot write {}: {}\n  fix: free space in [train] run_dir or set [log] profile_step = 0",
                 tmp.string(), std::strerror(errno));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) user_error("cannot rename {} to {}: {}", tmp.string(), path.string(), ec.message());
  bar.log_line(
      fmt::format("wrote the Chrome trace of step {} ({} ranks) to {} (open in chrome://tracing or "
                  "ui.perfetto.dev)",
                  step, per_rank.size(), path.string()));
}

// Stop reasons as numbers, so that one all-reduce MAX settles what every rank does: a signal is
// its number (1..64), the wall-clock budget ranks above any signal.
constexpr double kBudgetUsedUp = 1000;

std::string stop_reason(double code, double max_minutes) {
  if (code >= kBudgetUsedUp) return fmt::format("train.max_minutes = {} was used up", max_minutes);
  return "signal " + train::signal_name(int(code));
}

}  // namespace

std::vector<double> values_of_every_rank(Communicator* world, double mine) {
  if (!world || world->size() == 1) return {mine};
  std::vector<double> all(size_t(world->size()), 0.0);
  all[size_t(world->rank())] = mine;
  world->all_reduce(all.data(), int64_t(all.size()));
  return all;
}

std::vector<std::string> gather_text_at_lead(Communicator* world, const std::string& mine) {
  if (!world || world->size() == 1) return {mine};
  std::vector<std::string> out;
  for (int r = 0; r < world->size(); ++r) {
    // Rank r broadcasts its length, then its bytes; only world rank 0 keeps them.
    int64_t n = world->rank() == r ? int64_t(mine.size()) : 0;
    world->broadcast_bytes(&n, int64_t(sizeof n), r);
    std::string text = world->rank() == r ? mine : std::string(size_t(n), '\0');
    world->broadcast_bytes(text.data(), n, r);
    if (world->rank() == 0) out.push_back(std::move(text));
  }
  return out;
}

RunSummary run_loop(const RunDirectory& dir, const std::string& config_toml, int64_t completed,
                    const RunSchedule& schedule, const RunHooks& hooks, bool lead, const std::string& start_line) {
  Stopwatch wall;
  std::unique_ptr<MetricsWriter> writer;
  std::unique_ptr<TensorBoardWriter> tensorboard;
  if (lead) {
    dir.prepare(config_toml, completed);
    writer = std::make_unique<MetricsWriter>(dir.plan().run_dir.string());
    if (schedule.tensorboard)
      tensorboard = std::make_unique<TensorBoardWriter>(dir.plan().run_dir.string(), completed + 1);
  }
  const auto write_row = [&](const nlohmann::ordered_json& record) {
    if (writer) writer->write(record);
    if (tensorboard) tensorboard->write(record);
  };
  ProgressBar bar(schedule.total_steps, lead ? schedule.progress : "off");
  if (lead) bar.log_line(start_line);
  if (lead && schedule.writes_checkpoints)
    for (const auto& p : train::remove_stale_save_leftovers(dir.plan().checkpoint_root))
      bar.log_line("removed " + p.string() + " (left by an interrupted checkpoint save)");
  train::install_stop_signals(schedule.exit_signals);
  const auto evaluate = [&] {
    if (!hooks.evaluate) return;
    // An evaluation runs forwards of its own: they are its time, not the training steps'.
    const trace::PhaseSeconds before = trace::take_phase_seconds();
    Stopwatch eval_time;
    const std::optional<EvalOutcome> ev = hooks.evaluate();
    trace::PhaseSeconds after = before;
    after[size_t(trace::Phase::Eval)] += eval_time.seconds();
    (void)trace::take_phase_seconds();
    trace::add_phase_seconds(after);
    if (!ev) return;
    write_row(ev->record);
    if (lead) bar.log_line(ev->line);
  };
  // Retention after the checkpoint of `step` is complete: only then may older ones go (the
  // resumed-from one included).
  const auto prune_after = [&](int64_t step) {
    if (lead)
      for (const auto& p :
           train::prune_checkpoints(dir.plan().checkpoint_root, step, schedule.keep_last, schedule.keep_every))
        bar.log_line("checkpoint.keep_last = " + std::to_string(schedule.keep_last) + ": removed " + p.string());
  };
  // checkpoint.async: rank 0's background writer, at most one write in flight (`writing` is its step).
  std::unique_ptr<train::AsyncCheckpointWriter> async;
  int64_t writing = 0;
  if (schedule.async_checkpoint && schedule.writes_checkpoints)
    async = std::make_unique<train::AsyncCheckpointWriter>();
  // Collects a finished (block: or pending) background write: its failure stops the run here
  // (UserError C5 on rank 0, which the no-hangs machinery turns into the end of every rank).
  const auto collect_write = [&](bool block) {
    if (!async || !async->pending()) return;
    if (block ? async->wait() : async->poll()) prune_after(writing);
  };
  const auto save = [&](int64_t step, RunSummary& s) {
    const trace::PhaseScope timed(trace::Phase::Checkpoint);
    s.checkpoint = dir.checkpoint_path(step).string();
    inject_fault("save", step);
    collect_write(/*block=*/true);
    hooks.save(s.checkpoint, async.get());
    if (async && async->pending()) {
      writing = step;
      return;
    }
    prune_after(step);
  };

  RunSummary s;
  s.first_step = completed + 1;
  bool have_loss = false;
  int64_t step = completed;
  Stopwatch since_row;  // the first row's breakdown includes an evaluation before training
  if (completed == 0 && schedule.eval_before) evaluate();
  while (step < schedule.total_steps) {
    inject_fault("step", step + 1);
    const bool profiled = schedule.profile_step > 0 && step - completed + 1 == schedule.profile_step;
    if (profiled) trace::begin_recording();
    StepOutcome o = hooks.step();
    ++step;
    if (profiled) write_profile(dir, hooks.world, lead, step, trace::end_recording(), bar);
    // Memory after the step: its activations, gradients and optimizer state have all been live.
    const std::vector<double> rss = values_of_every_rank(hooks.world, double(peak_rss_bytes()) / (1 << 20));
    o.record["peak_rss_mib"] = rss;
    add_time_breakdown(o.record, trace::take_phase_seconds(), since_row.seconds());
    since_row.reset();
    write_row(o.record);
    collect_write(/*block=*/false);  // a failed background write stops the run after this step's row
    if (o.skipped) ++s.skipped_steps;
    // Every rank holds the same reduced loss, so every rank stops here together (rule C1).
    if (!o.skipped && !std::isfinite(o.loss))
      user_error(
          "training error C1: step {} has a non-finite loss ({}); the run stops without saving a checkpoint\n  fix: "
          "lower optim.lr or raise optim.warmup_steps, keep optim.grad_clip on, and resume from the last "
          "checkpoint (--checkpoint.load=auto)",
          step, o.loss);
    s.tokens += o.tokens;
    if (!o.skipped) s.final_loss = o.loss;
    if (!o.skipped && (!have_loss || o.loss < s.best_loss)) {
      s.best_loss = o.loss;
      s.best_step = step;
      have_loss = true;
    }
    if (lead && schedule.log_interval > 0 && (step % schedule.log_interval == 0 || step == schedule.total_steps))
      bar.log_line(o.line);
    if (lead) bar.update(step);
    if ((schedule.eval_every > 0 && step % schedule.eval_every == 0) ||
        (schedule.eval_at_end && step == schedule.total_steps))
      evaluate();
    if (schedule.checkpoint_every > 0 && step % schedule.checkpoint_every == 0 && step < schedule.total_steps)
      save(step, s);
    if (step == schedule.total_steps) break;
    // Stop? Only some ranks may have been signalled (or see the budget used up): agree first.
    double code = train::received_stop_signal();
    if (schedule.max_minutes > 0 && wall.seconds() >= schedule.max_minutes * 60) code = kBudgetUsedUp;
    if (hooks.world_max) code = hooks.world_max(code);
    if (code > 0) {
      s.stopped_by = stop_reason(code, schedule.max_minutes);
      bar.finish();
      if (!schedule.writes_checkpoints) {
        if (lead)
          bar.log_line(
              fmt::format("foldmoe {}: stopped at step {} after {}; no checkpoint saved (this run "
                          "saves none)",
                          schedule.command, step, s.stopped_by));
      } else {
        if (s.checkpoint != dir.checkpoint_path(step).string()) save(step, s);
        collect_write(/*block=*/true);  // the stop saves completely before it reports and exits
        if (lead)
          bar.log_line(
              fmt::format("foldmoe {}: saved checkpoint at step {} after {}: {}; continue with "
                          "--checkpoint.load=auto",
                          schedule.command, step, s.stopped_by, s.checkpoint));
      }
      s.last_step = step;
      s.seconds = wall.seconds();
      if (lead) bar.log_line(format_run_summary(schedule.command, s));
      return s;
    }
  }
  bar.finish();
  if (schedule.save_final && step > completed) {  // a run with no steps left has its checkpoint already
    Stopwatch save_time;
    save(step, s);
    collect_write(/*block=*/true);
    if (lead) bar.log_line(fmt::format("saved checkpoint {} ({:.1f} s)", s.checkpoint, save_time.seconds()));
  }
  collect_write(/*block=*/true);  // an interval save still in flight (save_final = false)
  s.last_step = step;
  s.seconds = wall.seconds();
  if (lead) bar.log_line(format_run_summary(schedule.command, s));
  return s;
}

RunSchedule base_run_schedule(const Config& cfg, const std::string& command, int64_t total_steps,
                              int64_t checkpoint_every, bool writes_checkpoints, int world_size) {
  RunSchedule s;
  s.command = command;
  s.total_steps = total_steps;
  s.log_interval = cfg.log.interval;
  s.checkpoint_every = writes_checkpoints ? checkpoint_every : 0;
  s.save_final = writes_checkpoints && cfg.checkpoint.save_final;
  s.progress = (world_size > 1 && cfg.log.progress == "auto") ? "off" : cfg.log.progress;
  s.tensorboard = cfg.log.tensorboard;
  s.profile_step = cfg.log.profile_step;
  s.exit_signals = cfg.train.exit_signals;
  s.max_minutes = cfg.train.max_minutes;
  s.writes_checkpoints = writes_checkpoints;
  s.keep_last = cfg.checkpoint.keep_last;
  s.keep_every = cfg.checkpoint.keep_every;
  s.async_checkpoint = cfg.checkpoint.async;
  return s;
}

std::string format_run_summary(const std::string& command, const RunSummary& s) {
  std::string where = s.checkpoint.empty() ? "no checkpoint saved" : "checkpoint " + s.checkpoint;
  if (s.skipped_steps > 0) where += fmt::format(", {} non-finite step(s) skipped", s.skipped_steps);
  const std::string done = s.stopped_by.empty() ? "done" : "stopped after " + s.stopped_by;
  if (s.first_step > s.last_step)
    return fmt::format("foldmoe {}: {}, no steps to run (at step {}), {}", command, done, s.last_step, where);
  return fmt::format(
      "foldmoe {}: {}, steps {}..{} in {:.1f} s, {} tokens, final loss {:.4f}, best loss {:.4f} "
      "(step {}), {}",
      command, done, s.first_step, s.last_step, s.seconds, s.tokens, s.final_loss, s.best_loss, s.best_step, where);
}

int64_t model_parameter_count(const Config& cfg) {
  const StageMemory m = estimate_stage_memory(cfg, ParallelSizes{}).at(0);
  return m.dense_params + m.expert_params;
}

int64_t arena_parameter_count(const ParamArena& arena) {
  int64_t n = 0;
  for (int i = 0; i < arena.size(); ++i) n += shape_numel(arena.spec(i).shape);
  return n;
}

std::string format_count(int64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", double(n) / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.2f}M", double(n) / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", double(n) / 1e3);
  return fmt::format("{}", n);
}

namespace {
std::filesystem::path checkpoint_root_of(const Config& cfg) {
  return cfg.checkpoint.dir.empty() ? std::filesystem::path(cfg.train.run_dir) / "checkpoints"
                                    : std::filesystem::path(cfg.checkpoint.dir);
}
}  // namespace

AutoLoad resolve_auto_load(Config& cfg, bool overwrite) {
  const bool asked = train::is_auto_load(cfg.checkpoint.load);
  if (!asked && (!cfg.checkpoint.load.empty() || overwrite)) return AutoLoad::None;
  const auto latest = train::latest_complete_checkpoint(checkpoint_root_of(cfg));
  if (!asked && !latest) return AutoLoad::None;  // nothing to continue: the run-directory rules decide
  cfg.checkpoint.load = latest ? latest->string() : "";
  return asked ? AutoLoad::Asked : AutoLoad::Implicit;
}

std::string auto_load_line(const Config& cfg, const std::string& command, AutoLoad how) {
  if (how == AutoLoad::Implicit)
    return fmt::format(
        "foldmoe {}: continuing from {} (the latest complete checkpoint of {}; --overwrite starts the run over, a "
        "new --train.run_dir starts another)",
        command, cfg.checkpoint.load, checkpoint_root_of(cfg).string());
  if (cfg.checkpoint.load.empty())
    return fmt::format("foldmoe {}: checkpoint.load = auto: no complete checkpoint in {}, starting fresh", command,
                       checkpoint_root_of(cfg).string());
  return fmt::format("foldmoe {}: checkpoint.load = auto: continuing from {}", command, cfg.checkpoint.load);
}

RunDirectory make_run_directory(const Config& cfg, const std::string& command, int64_t checkpoint_every, bool overwrite,
                                bool auto_resume) {
  RunDirectoryPlan p;
  p.command = command;
  p.run_dir = cfg.train.run_dir;
  p.checkpoint_root = checkpoint_root_of(cfg);
  p.auto_fresh = auto_resume && cfg.checkpoint.load.empty();
  p.resume_from = cfg.checkpoint.load;
  p.overwrite = overwrite;
  p.writes_checkpoints = checkpoint_every > 0 || cfg.checkpoint.save_final;
  // model.safetensors (fp32 weights) + optimizer.safetensors (fp32 m and v), plus headers and the
  // manifest.
  p.checkpoint_bytes = 12.0 * double(model_parameter_count(cfg)) + 1e6;
  return RunDirectory(std::move(p));
}

}  // namespace foldmoe
