// `foldmoe plan`: the layout planner (docs/planner.md). With layout flags it predicts one layout's
// memory, step time and MFU; without them it searches every valid layout and prints the best K.
// `--calibrate` measures this machine's CPU backend (and, under mpirun, its collectives) and writes a cluster
// file. Needs no MPI to plan.
#include <fmt/format.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/commands.h"
#include "cli/launch.h"
#include "cli/option_checks.h"
#include "config/layout_rules.h"
#include "core/check.h"
#include "plan/calibrate.h"
#include "plan/calibrate_comm.h"
#include "plan/cluster.h"
#include "plan/model_source.h"
#include "plan/report.h"
#include "plan/search.h"
#include "plan/step_model.h"

namespace foldmoe::cli {
namespace {

struct PlanOptions {
  std::string model, cluster = "preset:dgx-h100", precision = "bf16", recompute = "none", format = "table";
  std::string order = "tp-cp-ep-dp-pp", out;
  int gpus = 0, global_batch = 0, seq = 0, top = 5;
  int tp = 1, cp = 1, pp = 1, vpp = 1, ep = 1, etp = 0, micro_batch = 1;
  bool distributed_optimizer = true, calibrate = false;
};

const std::vector<std::string> kLayoutFlags = {
    "--tp",   "--cp", "--pp", "--vpp", "--ep", "--etp", "--micro-batch", "--recompute", "--distributed-optimizer",
    "--order"};

int run_calibrate(const PlanOptions& o) {
  if (o.out.empty())
    user_error(
        "plan error P4: --calibrate needs --out FILE (the cluster file it writes)\n  fix: e.g. foldmoe plan "
        "--calibrate --out cluster-cpu.toml");
  if (std::ifstream(o.out).good())
    user_error(
        "plan error P4: --out {} exists; calibration does not overwrite files\n  fix: remove it or choose "
        "another name",
        o.out);
  // Under mpirun the ranks first time foldmoe's collectives between them; then rank 0 alone times the
  // compute (the others have finished, so the cores are its own) and writes the file.
  const std::shared_ptr<Communicator> world = launch_world();
  std::optional<plan::CommCalibration> comm;
  if (world && world->size() > 1) comm = plan::measure_collectives(*world);
  if (world && world->rank() != 0) return 0;
  plan::Cluster c = plan::calibrate_cpu();
  if (comm) {
    plan::apply(*comm, c);
    c.source = fmt::format("foldmoe plan --calibrate on this machine ({} cores): sgemm, attention and copy timed; {}",
                           c.shared_cores, comm->summary);
  }
  std::ofstream f(o.out);
  f << plan::cluster_to_toml(c);
  if (!f) user_error("plan error P4: cannot write --out {}\n  fix: choose a writable path", o.out);
  std::printf("%s\nwrote %s\n", plan::cluster_to_toml(c).c_str(), o.out.c_str());
  if (!comm)
    std::printf(
        "note: collectives not measured (one process); kept the defaults: links at half the copy bandwidth (%.2f "
        "GB/s), latency %.0f us, collective and all-to-all efficiency 1. Run it under mpirun -np 2 (or more) to "
        "measure them.\n",
        c.intra_bw / 1e9, c.intra_latency * 1e6);
  return 0;
}

int run_plan(CLI::App* sub, const PlanOptions& o) {
  for (const auto& [flag, v] : {std::pair{"--gpus", o.gpus}, {"--global-batch", o.global_batch}, {"--seq", o.seq}})
    if (sub->count(flag) == 0)
      user_error(
          "plan error P4: `foldmoe plan` needs {}\n  fix: e.g. --model preset:mixtral-8x22b --cluster "
          "preset:dgx-h100 --gpus 128 --global-batch 256 --seq 4096",
          flag);
  if (o.model.empty())
    user_error(
        "plan error P4: `foldmoe plan` needs --model\n  fix: a foldmoe TOML config, an HF model directory or one "
        "of {}",
        plan::model_preset_names());
  const Config model = plan::load_plan_model(o.model);
  const plan::Cluster cluster = plan::load_cluster(o.cluster);
  const plan::Workload w{.gpus = o.gpus, .global_batch = o.global_batch, .seq = o.seq, .precision = o.precision};
  if (o.precision == "fp8" && (cluster.backend == "cpu" || cluster.peak_flops_fp8 <= 0))
    user_error("plan error P4: --precision fp8 on cluster {} which has no fp8 peak\n  fix: use --precision bf16",
               cluster.name);
  bool single = false;
  for (const std::string& f : kLayoutFlags) single = single || sub->count(f) > 0;
  std::vector<plan::Prediction> shown;
  std::string header;
  nlohmann::json j;
  if (single) {
    plan::PlanLayout l{.tp = o.tp,
                       .cp = o.cp,
                       .pp = o.pp,
                       .vpp = o.vpp,
                       .ep = o.ep,
                       .etp = o.etp > 0 ? o.etp : o.tp,
                       .micro_batch = o.micro_batch,
                       .recompute = o.recompute,
                       .distributed_optimizer = o.distributed_optimizer,
                       .order = o.order};
    const std::string errors = plan::plan_layout_errors(model, w, l);
    if (!errors.empty()) throw UserError(errors);
    shown.push_back(plan::predict(model, w, l, cluster));
    j = plan::prediction_json(shown.front());
  } else {
    const plan::SearchResult r = plan::search_layouts(model, w, cluster);
    if (r.ranked.empty())
      user_error(
          "plan error P5: no layout of {} GPUs fits: {} valid layouts, none within {:.1f} GiB per device\n  fix: "
          "add GPUs, shorten --seq, or use a cluster with more memory",
          o.gpus, r.valid, cluster.memory_bytes / double(1ull << 30));
    shown.assign(r.ranked.begin(), r.ranked.begin() + std::min<size_t>(size_t(o.top), r.ranked.size()));
    j = plan::prediction_json(shown.front());
    j["layouts"] = nlohmann::json::array();
    for (const plan::Prediction& p : shown) j["layouts"].push_back(plan::prediction_json(p));
    j["search"] = {{"valid_layouts", r.valid}, {"evaluated", r.evaluated}, {"fitting", r.fitting}};
    header = fmt::format(
        "searched {} valid layouts ({} with micro-batch, recompute and ZeRO-1 variants), {} fit; "
        "best {}:\n",
        r.valid, r.evaluated, r.fitting, shown.size());
  }
  j["assumptions"] = plan::assumptions_json(cluster, w);
  if (o.format == "json") {
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::fputs(header.c_str(), stdout);
    std::fputs(plan::prediction_table(shown, true).c_str(), stdout);
    std::fputs(plan::assumptions_text(cluster, w).c_str(), stdout);
  }
  return 0;
}

}  // namespace

void register_plan(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("plan",
                                     "Predict memory, step time and MFU of a layout, or search for the best "
                                     "layouts (docs/planner.md); needs no MPI");
  auto o = std::make_shared<PlanOptions>();
  sub->add_option("--model", o->model, "foldmoe TOML config, HF model directory (config.json) or preset:NAME");
  sub->add_option("--cluster", o->cluster, "Cluster TOML file or preset:NAME (default preset:dgx-h100)");
  sub->add_option("--gpus", o->gpus, "Devices (world size)")->check(integer_at_least("--gpus", 1, "128", 1 << 20));
  sub->add_option("--global-batch", o->global_batch, "Sequences per step")
      ->check(integer_at_least("--global-batch", 1, "256", 1 << 20));
  sub->add_option("--seq", o->seq, "Sequence length")->check(integer_at_least("--seq", 2, "4096", 1 << 22));
  sub->add_option("--precision", o->precision, "bf16 or fp8")->check(one_of("--precision", {"bf16", "fp8"}));
  sub->add_option("--tp", o->tp, "Tensor parallel size (a layout flag: evaluate one layout)")
      ->check(any_integer("--tp", "2"));
  sub->add_option("--cp", o->cp, "Context parallel size")->check(any_integer("--cp", "1"));
  sub->add_option("--pp", o->pp, "Pipeline parallel size")->check(any_integer("--pp", "8"));
  sub->add_option("--vpp", o->vpp, "Virtual pipeline chunks per stage")->check(any_integer("--vpp", "1"));
  sub->add_option("--ep", o->ep, "Expert parallel size")->check(any_integer("--ep", "8"));
  sub->add_option("--etp", o->etp, "Expert tensor parallel size (default = tp)")->check(any_integer("--etp", "1"));
  sub->add_option("--micro-batch", o->micro_batch, "Sequences per micro-batch")
      ->check(integer_at_least("--micro-batch", 1, "1", 1 << 20));
  sub->add_option("--recompute", o->recompute, "none, moe or full")
      ->check(one_of("--recompute", {"none", "moe", "full"}));
  sub->add_option("--distributed-optimizer", o->distributed_optimizer, "ZeRO-1 (true/false, default true)");
  sub->add_option("--order", o->order, "Order string (default tp-cp-ep-dp-pp)");
  sub->add_option("--top", o->top, "Layouts to print from a search")->check(integer_at_least("--top", 1, "5", 1 << 20));
  sub->add_option("--format", o->format, "table or json")->check(one_of("--format", {"table", "json"}));
  sub->add_flag("--calibrate", o->calibrate, "Measure this machine's CPU backend and write a cluster file (--out)");
  sub->add_option("--out", o->out, "Cluster file that --calibrate writes");
  set_action(sub, [sub, o] { return o->calibrate ? run_calibrate(*o) : run_plan(sub, *o); });
}

}  // namespace foldmoe::cli
