#include "plan/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

namespace foldmoe::plan {
namespace {
constexpr double kGiB = double(1ull << 30);
}

std::string layout_name(const PlanLayout& l) {
  const std::string split = l.pipeline_layers.empty() ? "" : fmt::format("[{}]", fmt::join(l.pipeline_layers, ","));
  return fmt::format("tp{} cp{} pp{}{}{} dp{} | etp{} ep{} edp{} | mb{} recompute={} zero1={}", l.tp, l.cp, l.pp,
                     l.vpp > 1 ? fmt::format("x{}", l.vpp) : "", split, l.dp, l.etp, l.ep, l.edp, l.micro_batch,
                     l.recompute, l.distributed_optimizer ? "on" : "off");
}

nlohmann::json prediction_json(const Prediction& p) {
  const PlanLayout& l = p.layout;
  nlohmann::json mem = nlohmann::json::object(), time = nlohmann::json::object();
  for (const auto& [k, v] : p.memory) mem[k] = v / kGiB;
  for (const auto& [k, v] : p.time) time[k] = v;
  return {{"layout",
           {{"tp", l.tp},
            {"cp", l.cp},
            {"pp", l.pp},
            {"vpp", l.vpp},
            {"dp", l.dp},
            {"ep", l.ep},
            {"etp", l.etp},
            {"edp", l.edp},
            {"micro_batch", l.micro_batch},
            {"recompute", l.recompute},
            {"distributed_optimizer", l.distributed_optimizer},
            {"order", l.order},
            {"pipeline_layers", l.pipeline_layers}}},
          {"mfu", p.mfu},
          {"step_time_s", p.step_time_s},
          {"tokens_per_s_per_gpu", p.tokens_per_s_per_gpu},
          {"memory_gib_per_gpu", p.memory_bytes / kGiB},
          {"fits", p.fits},
          {"links", p.links},
          {"breakdown", {{"time_s", time}, {"memory_gib", mem}}}};
}

nlohmann::json assumptions_json(const Cluster& c, const Workload& w) {
  return {{"cluster", c.name},
          {"calibration", c.source},
          {"precision", c.backend == "cpu" ? std::string("fp32") : w.precision},
          {"memory_gib_per_gpu_available", c.memory_bytes / kGiB},
          {"fragmentation_margin", c.fragmentation},
          {"overlap", {{"dp", c.overlap_dp}, {"cp", c.overlap_cp}, {"tp", c.overlap_tp}, {"ep", c.overlap_ep}}},
          {"load_balance", "experts receive equal token counts (capacity factor 1.0, as in the paper's benchmarks)"}};
}

std::string assumptions_text(const Cluster& c, const Workload& w) {
  return fmt::format(
      "assumptions: cluster {} ({}), precision {}, {:.1f} GiB per device, fragmentation margin {:.0f}%, overlap "
      "hidden fractions dp {:.0f}% cp {:.0f}% tp {:.0f}% ep {:.0f}%, balanced experts\n",
      c.name, c.source, c.backend == "cpu" ? std::string("fp32") : w.precision, c.memory_bytes / kGiB,
      c.fragmentation * 100, c.overlap_dp * 100, c.overlap_cp * 100, c.overlap_tp * 100, c.overlap_ep * 100);
}

std::string prediction_table(const std::vector<Prediction>& ranked, bool details) {
  std::string out = fmt::format("{:>4}  {:<62}  {:>7}  {:>9}  {:>12}  {:>10}  {}\n", "rank", "layout", "MFU", "step s",
                                "tok/s/GPU", "GiB/GPU", "fits");
  for (size_t i = 0; i < ranked.size(); ++i) {
    const Prediction& p = ranked[i];
    out +=
        fmt::format("{:>4}  {:<62}  {:>6.1f}%  {:>9.3f}  {:>12.1f}  {:>10.1f}  {}\n", i + 1, layout_name(p.layout),
                    p.mfu * 100, p.step_time_s, p.tokens_per_s_per_gpu, p.memory_bytes / kGiB, p.fits ? "yes" : "NO");
  }
  if (details && !ranked.empty()) {
    const Prediction& p = ranked.front();
    out += fmt::format("\nlinks: {}\nstep time of rank 1 ({:.3f} s):\n", p.links, p.step_time_s);
    for (const auto& [k, v] : p.time)
      if (v > 0) out += fmt::format("  {:<24} {:>9.4f} s  {:>5.1f}%\n", k, v, 100 * v / p.step_time_s);
    out += fmt::format("memory per device ({:.2f} GiB):\n", p.memory_bytes / kGiB);
    for (const auto& [k, v] : p.memory) out += fmt::format("  {:<24} {:>9.2f} GiB\n", k, v / kGiB);
  }
  return out;
}

}  // namespace foldmoe::plan
