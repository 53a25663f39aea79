// `foldmoe topology`: prints both grids of a layout (docs/topology.md): every process group as rank lists,
// per-rank coordinates, where EP is folded. Validates the layout rules (L1–L5, and L6–L14 with
// --config); a violation exits 2 with the layout error text. Needs no MPI.
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "config/toml_reader.h"
#include "comm/topology.h"
#include "core/check.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

namespace foldmoe::cli {
namespace {

struct TopologyOptions {
  int world = 1, tp = 1, cp = 1, pp = 1, ep = 1, etp = 0, vpp = 1;
  std::string order = "tp-cp-ep-dp-pp";
  std::string format = "table";
  std::string config;
};

using Named = std::vector<std::pair<const char*, const RankGroups*>>;

Named attention_groups(const TopologyGroups& g) {
  return {{"tp", &g.tp},       {"cp", &g.cp},       {"dp", &g.dp},       {"pp", &g.pp},
          {"dp_cp", &g.dp_cp}, {"tp_cp", &g.tp_cp}, {"tp_pp", &g.tp_pp}, {"tp_dp_cp", &g.tp_dp_cp},
          {"embedding", &g.embedding}, {"position_embedding", &g.position_embedding}};
}

Named expert_groups(const TopologyGroups& g) {
  return {{"etp", &g.etp}, {"ep", &g.ep}, {"edp", &g.edp}, {"etp_ep", &g.etp_ep}, {"etp_ep_pp", &g.etp_ep_pp},
          {"pp", &g.expert_pp}};
}

std::string to_json(const Topology& t) {
  const ParallelSizes& s = t.sizes();
  std::string out = "{\n";
  out += fmt::format("  \"world\": {}, \"tp\": {}, \"cp\": {}, \"pp\": {}, \"dp\": {}, \"ep\": {}, \"etp\": {}, "
                     "\"edp\": {},\n  \"order\": {}, \"folding\": {},\n",
                     s.world, s.tp, s.cp, s.pp, s.dp, s.ep, s.etp, s.edp, nlohmann::json(t.order()).dump(),
                     nlohmann::json(t.folding()).dump());
  const auto section = [&](const char* name, const Named& groups) {
    out += fmt::format("  \"{}\": {{\n", name);
    for (size_t i = 0; i < groups.size(); ++i)
      out += fmt::format("    \"{}\": {}{}\n", groups[i].first, nlohmann::json(*groups[i].second).dump(),
                         i + 1 < groups.size() ? "," : "");
    out += "  },\n";
  };
  section("attention", attention_groups(t.groups()));
  section("expert", expert_groups(t.groups()));
  out += "  \"ranks\": [\n";
  for (int r = 0; r < s.world; ++r) {
    const RankCoords c = t.coords(r);
    out += fmt::format("    {{\"rank\": {}, \"tp\": {}, \"cp\": {}, \"dp\": {}, \"pp\": {}, \"etp\": {}, \"ep\": {}, "
                       "\"edp\": {}}}{}\n",
                       r, c.tp, c.cp, c.dp, c.pp, c.etp, c.ep, c.edp, r + 1 < s.world ? "," : "");
  }
  out += "  ]\n}\n";
  return out;
}

std::string list_text(const std::vector<int>& v) { return fmt::format("[{}]", fmt::join(v, ",")); }

std::string to_table(const Topology& t) {
  const ParallelSizes& s = t.sizes();
  const TopologyGroups& g = t.groups();
  std::string out;
  out += fmt::format("world {}  order {}\n", s.world, t.order());
  out += fmt::format("attention grid: tp={} cp={} dp={} pp={}\n", s.tp, s.cp, s.dp, s.pp);
  out += fmt::format("expert grid:    etp={} ep={} edp={} pp={}\n", s.etp, s.ep, s.edp, s.pp);
  out += fmt::format("folding: the etp·ep = {} group is folded {} (tp·cp = {}, dp = {})\n\n", s.etp * s.ep,
                     t.folding(), s.tp * s.cp, s.dp);
  const std::vector<std::pair<const char*, const RankGroups*>> cols = {
      {"tp", &g.tp},   {"cp", &g.cp},     {"dp_cp", &g.dp_cp}, {"pp", &g.pp},  {"tp_cp", &g.tp_cp},
      {"etp", &g.etp}, {"ep", &g.ep},     {"edp", &g.edp},     {"etp_ep", &g.etp_ep}};
  out += fmt::format("{:>5}  {:<13}  {:<13}", "rank", "tp,cp,dp,pp", "etp,ep,edp,pp");
  for (const auto& [name, _] : cols) out += fmt::format("  {}", name);
  out += "\n";
  for (int r = 0; r < s.world; ++r) {
    const RankCoords c = t.coords(r);
    out += fmt::format("{:>5}  {:<13}  {:<13}", r, fmt::format("{},{},{},{}", c.tp, c.cp, c.dp, c.pp),
                       fmt::format("{},{},{},{}", c.etp, c.ep, c.edp, c.pp));
    for (const auto& [name, groups] : cols) {
      const auto [gi, m] = Topology::locate(*groups, r);
      out += fmt::format("  {}", list_text((*groups)[size_t(gi)]));
    }
    out += "\n";
  }
  out += "\ngroups (member order; groups in generation order):\n";
  for (const auto& [name, groups] : attention_groups(g)) {
    out += fmt::format("  attention.{:<20}", name);
    for (const auto& m : *groups) out += fmt::format(" {}", list_text(m));
    out += "\n";
  }
  for (const auto& [name, groups] : expert_groups(g)) {
    out += fmt::format("  expert.{:<23}", name);
    for (const auto& m : *groups) out += fmt::format(" {}", list_text(m));
    out += "\n";
  }
  return out;
}

std::string gib(double bytes) {
  return bytes >= 1 << 30 ? fmt::format("{:.2f} GiB", bytes / double(1 << 30))
                          : fmt::format("{:.2f} MiB", bytes / double(1 << 20));
}

std::vector<int> stage_ranks(const Topology& t, int stage) {
  std::vector<int> out;
  for (int r = 0; r < t.sizes().world; ++r)
    if (t.coords(r).pp == stage) out.push_back(r);
  return out;
}

std::string layers_text(const StageMemory& m) {
  std::vector<std::string> parts;
  for (const auto& c : m.chunk_layers)
    parts.push_back(c.size() == 1 ? fmt::format("{}", c[0]) : fmt::format("{}-{}", c.front(), c.back()));
  return fmt::format("{}", fmt::join(parts, " | "));
}

// Per pipeline stage: its ranks, layers (chunk by chunk), embedding/head, and the memory estimate.
std::string stages_table(const Topology& t, const Config& cfg, const std::vector<StageMemory>& stages) {
  std::string out = fmt::format(
      "\npipeline stages ({} layers, {} micro-batches per replica, recompute {}, distributed optimizer {}):\n",
      cfg.model.layers, cfg.micro_batches_per_replica(t.sizes().dp), cfg.train.recompute,
      cfg.parallel.distributed_optimizer ? "on" : "off");
  out += fmt::format("{:>5}  {:<16}  {:<14}  {:<10}  {:>9}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}\n", "stage", "ranks",
                     "layers", "embed/head", "in-flight", "params/rank", "weights+grad", "optimizer", "activations",
                     "total/rank");
  for (const StageMemory& m : stages) {
    const std::string eh = m.embedding && m.head ? "both" : m.embedding ? "embedding" : m.head ? "head" : "-";
    out += fmt::format("{:>5}  {:<16}  {:<14}  {:<10}  {:>9}  {:>12}  {:>12}  {:>12}  {:>12}  {:>12}\n", m.stage,
                       list_text(stage_ranks(t, m.stage)), layers_text(m), eh, m.micro_batches_in_flight,
                       m.dense_params + m.expert_params, gib(m.weight_bytes + m.grad_bytes), gib(m.optimizer_bytes),
                       gib(m.activation_bytes), gib(m.total_bytes()));
  }
  out += "(fp32 weights, gradients and AdamW moments counted exactly; activations estimated from the cached "
         "tensors of each layer times the micro-batches in flight.)\n";
  return out;
}

nlohmann::json stages_json(const Topology& t, const std::vector<StageMemory>& stages) {
  nlohmann::json j = nlohmann::json::array();
  for (const StageMemory& m : stages)
    j.push_back({{"stage", m.stage}, {"ranks", stage_ranks(t, m.stage)}, {"chunk_layers", m.chunk_layers},
                 {"embedding", m.embedding}, {"head", m.head}, {"micro_batches_in_flight", m.micro_batches_in_flight},
                 {"dense_params_per_rank", m.dense_params}, {"expert_params_per_rank", m.expert_params},
                 {"weight_bytes", m.weight_bytes}, {"grad_bytes", m.grad_bytes},
                 {"optimizer_bytes", m.optimizer_bytes}, {"activation_bytes_estimate", m.activation_bytes}});
  return j;
}

}  // namespace

void register_topology(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("topology", "Show the rank layout of both grids (MoE parallel folding) and "
                                                 "check the layout rules; needs no MPI");
  auto o = std::make_shared<TopologyOptions>();
  // Integers only here; their ranges are layout rule L1, checked with every other layout rule.
  sub->add_option("--world", o->world, "World size (number of ranks)")->required()->check(any_integer("--world", "8"));
  sub->add_option("--tp", o->tp, "Attention tensor parallel size")->check(any_integer("--tp", "2"));
  sub->add_option("--cp", o->cp, "Context parallel size")->check(any_integer("--cp", "2"));
  sub->add_option("--pp", o->pp, "Pipeline parallel size")->check(any_integer("--pp", "2"));
  sub->add_option("--ep", o->ep, "Expert parallel size")->check(any_integer("--ep", "4"));
  sub->add_option("--etp", o->etp, "Expert tensor parallel size (0 = tp)")->check(any_integer("--etp", "1"));
  sub->add_option("--vpp", o->vpp, "Virtual pipeline chunks (model-dependent rules only)")
      ->check(any_integer("--vpp", "2"));
  sub->add_option("--order", o->order, "Order string, first token fastest (default tp-cp-ep-dp-pp)");
  sub->add_option("--format", o->format, "Output: table or json")->check(one_of("--format", {"table", "json"}));
  sub->add_option("--config", o->config,
                  "TOML config: its [parallel] sizes are the defaults of the flags above, and the "
                  "model-dependent rules (L6-L14) are checked");
  set_action(sub, [sub, o] {
    LayoutSpec spec{.world = o->world, .tp = o->tp, .cp = o->cp, .pp = o->pp, .ep = o->ep, .etp = o->etp,
                    .order = o->order, .vpp = o->vpp};
    Config cfg;
    if (!o->config.empty()) {
      cfg = load_config_file(o->config);
      const LayoutSpec from = LayoutSpec::from_config(cfg, o->world);
      const auto pick = [&](const char* flag, int& v, int cv) {
        if (sub->count(flag) == 0) v = cv;
      };
      pick("--tp", spec.tp, from.tp);
      pick("--cp", spec.cp, from.cp);
      pick("--pp", spec.pp, from.pp);
      pick("--ep", spec.ep, from.ep);
      pick("--etp", spec.etp, from.etp);
      pick("--vpp", spec.vpp, from.vpp);
      if (sub->count("--order") == 0) spec.order = from.order;
    }
    validate_layout(spec, o->config.empty() ? nullptr : &cfg);
    const Topology topo(spec);
    std::string text = o->format == "json" ? to_json(topo) : to_table(topo);
    if (!o->config.empty()) {
      Config sized = resolve_config(cfg);
      sized.parallel.tp = spec.tp, sized.parallel.cp = spec.cp, sized.parallel.pp = spec.pp;
      sized.parallel.ep = spec.ep, sized.parallel.etp = spec.etp, sized.parallel.vpp = spec.vpp;
      const std::vector<StageMemory> stages = estimate_stage_memory(sized, topo.sizes());
      if (o->format == "json") {
        text.erase(text.rfind('}'));  // append "stages" to the object
        text.erase(text.find_last_not_of(" \n") + 1);
        text += ",\n  \"stages\": " + stages_json(topo, stages).dump() + "\n}\n";
      } else {
        text += stages_table(topo, sized, stages);
      }
    }
    std::fputs(text.c_str(), stdout);
    return 0;
  });
}

}  // namespace foldmoe::cli
