#include "train/run_loop.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>
#include <memory>

#include "core/fault_inject.h"
#include "core/timer.h"
#include "train/memory_estimate.h"
#include "train/metrics.h"

namespace foldmoe {

RunSummary run_loop(const RunDirectory& dir, const std::string& config_toml, int64_t completed,
                    const RunSchedule& schedule, const RunHooks& hooks, bool lead, const std::string& start_line) {
  Stopwatch wall;
  std::unique_ptr<MetricsWriter> writer;
  if (lead) {
    dir.prepare(config_toml, completed);
    writer = std::make_unique<MetricsWriter>(dir.plan().run_dir.string());
  }
  ProgressBar bar(schedule.total_steps, lead ? schedule.progress : "off");
  if (lead) bar.log_line(start_line);
  const auto evaluate = [&] {
    if (!hooks.evaluate) return;
    const std::optional<EvalOutcome> ev = hooks.evaluate();
    if (!ev) return;
    if (writer) writer->write(ev->record);
    if (lead) bar.log_line(ev->line);
  };
  const auto save = [&](int64_t step, RunSummary& s) {
    s.checkpoint = dir.checkpoint_path(step).string();
    inject_fault("save", step);
    hooks.save(s.checkpoint);
  };

  RunSummary s;
  s.first_step = completed + 1;
  bool have_loss = false;
  int64_t step = completed;
  if (completed == 0 && schedule.eval_before) evaluate();
  while (step < schedule.total_steps) {
    inject_fault("step", step + 1);
    const StepOutcome o = hooks.step();
    ++step;
    if (writer) writer->write(o.record);
    s.tokens += o.tokens;
    s.final_loss = o.loss;
    if (std::isfinite(o.loss) && (!have_loss || o.loss < s.best_loss)) {
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
  }
  bar.finish();
  if (schedule.save_final) {
    save(step, s);
    if (lead) bar.log_line("saved checkpoint " + s.checkpoint);
  }
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
  return s;
}

std::string format_run_summary(const std::string& command, const RunSummary& s) {
  const std::string where = s.checkpoint.empty() ? "no checkpoint saved" : "checkpoint " + s.checkpoint;
  if (s.first_step > s.last_step)
    return fmt::format("foldmoe {}: done, no steps to run (at step {}), {}", command, s.last_step, where);
  return fmt::format(
      "foldmoe {}: done, steps {}..{} in {:.1f} s, {} tokens, final loss {:.4f}, best loss {:.4f} "
      "(step {}), {}",
      command, s.first_step, s.last_step, s.seconds, s.tokens, s.final_loss, s.best_loss, s.best_step, where);
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

RunDirectory make_run_directory(const Config& cfg, const std::string& command, int64_t checkpoint_every,
                                bool overwrite) {
  RunDirectoryPlan p;
  p.command = command;
  p.run_dir = cfg.train.run_dir;
  p.checkpoint_root =
      cfg.checkpoint.dir.empty() ? p.run_dir / "checkpoints" : std::filesystem::path(cfg.checkpoint.dir);
  p.resume_from = cfg.checkpoint.load;
  p.overwrite = overwrite;
  p.writes_checkpoints = checkpoint_every > 0 || cfg.checkpoint.save_final;
  // model.safetensors (fp32 weights) + optimizer.safetensors (fp32 m and v), plus headers and the
  // manifest.
  p.checkpoint_bytes = 12.0 * double(model_parameter_count(cfg)) + 1e6;
  return RunDirectory(std::move(p));
}

}  // namespace foldmoe
