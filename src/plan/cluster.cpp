#include "plan/cluster.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <fstream>
#include <sstream>
#include <vector>

#include "core/check.h"

namespace foldmoe::plan {
namespace {

// One numeric key of the cluster file: its TOML name, the field, and the factor from the file's
// unit (TFLOP/s, GB/s, µs, GiB) to the field's (FLOP/s, bytes/s, s, bytes).
struct NumberKey {
  const char* name;
  double Cluster::*field;
  double scale;
  double min, max;
};

const std::vector<NumberKey>& number_keys() {
  static const std::vector<NumberKey> keys = {
      {"device.peak_tflops", &Cluster::peak_flops, 1e12, 1e-6, 1e6},
      {"device.peak_tflops_fp8", &Cluster::peak_flops_fp8, 1e12, 0, 1e6},
      {"device.memory_gib", &Cluster::memory_bytes, double(1ull << 30), 1e-3, 1e6},
      {"device.memory_bw_gb_s", &Cluster::memory_bw, 1e9, 1e-3, 1e6},
      {"device.shared_cores", &Cluster::shared_cores, 1, 0, 1e6},
      {"links.intra_node_gb_s", &Cluster::intra_bw, 1e9, 1e-6, 1e6},
      {"links.intra_node_latency_us", &Cluster::intra_latency, 1e-6, 0, 1e6},
      {"links.inter_node_gb_s", &Cluster::inter_bw, 1e9, 1e-6, 1e6},
      {"links.inter_node_latency_us", &Cluster::inter_latency, 1e-6, 0, 1e6},
      {"efficiency.gemm", &Cluster::gemm_efficiency, 1, 1e-4, 1},
      {"efficiency.gemm_half_dim", &Cluster::gemm_half_dim, 1, 0, 1e6},
      {"efficiency.gemm_fp8", &Cluster::gemm_fp8_efficiency, 1, 1e-4, 1},
      {"efficiency.fp8_cast_passes", &Cluster::fp8_cast_passes, 1, 0, 1e4},
      {"efficiency.attention", &Cluster::attention_efficiency, 1, 1e-4, 1},
      {"efficiency.intra_node_collective", &Cluster::intra_efficiency, 1, 1e-4, 1},
      {"efficiency.inter_node_collective", &Cluster::inter_efficiency, 1, 1e-4, 1},
      {"efficiency.alltoall", &Cluster::alltoall_efficiency, 1, 1e-4, 1},
      {"efficiency.allreduce", &Cluster::allreduce_efficiency, 1, 1e-4, 1},
      {"efficiency.elementwise_passes", &Cluster::elementwise_passes, 1, 0, 1e4},
      {"efficiency.permute_passes", &Cluster::permute_passes, 1, 0, 1e4},
      {"memory.reserved_gib", &Cluster::reserved_bytes, double(1ull << 30), 0, 1e6},
      {"memory.fragmentation", &Cluster::fragmentation, 1, 0, 1},
      {"overlap.dp", &Cluster::overlap_dp, 1, 0, 1},
      {"overlap.cp", &Cluster::overlap_cp, 1, 0, 1},
      {"overlap.tp", &Cluster::overlap_tp, 1, 0, 1},
      {"overlap.ep", &Cluster::overlap_ep, 1, 0, 1},
      {"overlap.step_overhead_ms", &Cluster::step_overhead_s, 1e-3, 0, 1e9},
  };
  return keys;
}

}  // namespace

Cluster cluster_from_toml(const std::string& text, const std::string& source) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    user_error(
        "plan error P3: cluster file {}: {} (line {})\n  fix: correct the TOML syntax (docs/planner.md §2 shows the "
        "format)",
        source, err.description(), err.source().begin.line);
  }
  Cluster c;
  c.source = source;
  std::vector<std::string> known = {"cluster.name", "cluster.backend", "cluster.source", "device.per_node"};
  for (const NumberKey& k : number_keys()) known.push_back(k.name);
  for (const auto& [section, node] : root) {
    const toml::table* t = node.as_table();
    if (t == nullptr)
      user_error(
          "plan error P3: cluster file {}: '{}' is not a [section]\n  fix: put keys under [cluster], [device], "
          "[links], "
          "[efficiency], [memory] or [overlap]",
          source, std::string(section.str()));
    for (const auto& [key, value] : *t) {
      const std::string name = fmt::format("{}.{}", section.str(), key.str());
      bool found = false;
      for (const std::string& k : known) found = found || k == name;
      if (!found)
        user_error("plan error P3: cluster file {}: unknown key {}\n  fix: use one of the keys of docs/planner.md §2",
                   source, name);
    }
  }
  if (auto v = root["cluster"]["name"].value<std::string>()) c.name = *v;
  if (auto v = root["cluster"]["source"].value<std::string>()) c.source = *v;
  if (auto v = root["cluster"]["backend"].value<std::string>()) {
    if (*v != "cuda" && *v != "cpu")
      user_error("plan error P3: cluster file {}: cluster.backend = \"{}\"\n  fix: write \"cuda\" or \"cpu\"", source,
                 *v);
    c.backend = *v;
  }
  if (const toml::node* n = root.at_path("device.per_node").node()) {
    const auto v = n->value<int64_t>();
    if (!v || *v < 1 || *v > 1024)
      user_error(
          "plan error P3: cluster file {}: device.per_node must be an integer in 1..1024\n  fix: e.g. per_node = 8",
          source);
    c.devices_per_node = int(*v);
  }
  for (const NumberKey& k : number_keys()) {
    const toml::node* n = root.at_path(k.name).node();
    if (n == nullptr) continue;
    const auto v = n->value<double>();
    if (!v || !(*v >= k.min && *v <= k.max))
      user_error("plan error P3: cluster file {}: {} must be a number in [{}, {}]\n  fix: correct the value", source,
                 k.name, k.min, k.max);
    c.*k.field = *v * k.scale;
  }
  return c;
}

Cluster load_cluster(const std::string& arg) {
  if (arg.rfind("preset:", 0) == 0) {
    const std::string name = arg.substr(7);
    const std::string text = cluster_preset_text(name);
    if (text.empty())
      user_error("plan error P1: --cluster {}: no such preset\n  fix: use one of {} or a cluster TOML file", arg,
                 cluster_preset_names());
    return cluster_from_toml(text, arg);
  }
  std::ifstream in(arg);
  if (!in)
    user_error(
        "plan error P1: --cluster {}: cannot read the file\n  fix: give a cluster TOML file (`foldmoe plan "
        "--calibrate --out FILE` writes one) or preset:NAME ({})",
        arg, cluster_preset_names());
  std::stringstream ss;
  ss << in.rdbuf();
  return cluster_from_toml(ss.str(), arg);
}

std::string cluster_to_toml(const Cluster& c) {
  std::string out;
  out += fmt::format("[cluster]\nname = \"{}\"\nbackend = \"{}\"\nsource = \"{}\"\n", c.name, c.backend, c.source);
  std::string section = "cluster";
  for (const NumberKey& k : number_keys()) {
    const std::string name = k.name;
    const std::string sec = name.substr(0, name.find('.'));
    if (sec != section) {
      out += fmt::format("\n[{}]\n", sec);
      if (sec == "device") out += fmt::format("per_node = {}\n", c.devices_per_node);
      section = sec;
    }
    out += fmt::format("{} = {:.6g}\n", name.substr(name.find('.') + 1), c.*k.field / k.scale);
  }
  return out;
}

}  // namespace foldmoe::plan
