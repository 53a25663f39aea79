// `foldmoe topology`: prints both grids of a layout (spec 01): every process group as rank lists,
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
#include "comm/topology.h"
#include "core/check.h"

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

}  // namespace

void register_topology(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("topology", "Show the rank layout of both grids (MoE parallel folding) and "
                                                 "check the layout rules; needs no MPI");
  auto o = std::make_shared<TopologyOptions>();
  sub->add_option("--world", o->world, "World size (number of ranks)")->required();
  sub->add_option("--tp", o->tp, "Attention tensor parallel size");
  sub->add_option("--cp", o->cp, "Context parallel size");
  sub->add_option("--pp", o->pp, "Pipeline parallel size");
  sub->add_option("--ep", o->ep, "Expert parallel size");
  sub->add_option("--etp", o->etp, "Expert tensor parallel size (0 = tp)");
  sub->add_option("--vpp", o->vpp, "Virtual pipeline chunks (model-dependent rules only)");
  sub->add_option("--order", o->order, "Order string, first token fastest (default tp-cp-ep-dp-pp)");
  sub->add_option("--format", o->format, "Output: table or json")->check(CLI::IsMember({"table", "json"}));
  sub->add_option("--config", o->config,
                  "TOML config: its [parallel] sizes are the defaults of the flags above, and the "
                  "model-dependent rules (L6-L14) are checked");
  set_action(sub, [sub, o] {
    LayoutSpec spec{.world = o->world, .tp = o->tp, .cp = o->cp, .pp = o->pp, .ep = o->ep, .etp = o->etp,
                    .order = o->order, .vpp = o->vpp};
    Config cfg;
    if (!o->config.empty()) {
      std::ifstream in(o->config);
      if (!in) user_error("config file '{}' cannot be opened: check the path", o->config);
      std::stringstream ss;
      ss << in.rdbuf();
      cfg = config_from_toml(ss.str(), o->config);
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
    const std::string text = o->format == "json" ? to_json(topo) : to_table(topo);
    std::fputs(text.c_str(), stdout);
    return 0;
  });
}

}  // namespace foldmoe::cli
