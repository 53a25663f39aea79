#include "parallel/pipeline_stages.h"

#include <fmt/format.h>

#include <numeric>
#include <string>

#include "core/check.h"

namespace foldmoe {

namespace {

void raise_l12(const std::vector<std::string>& items) {
  if (items.empty()) return;
  if (items.size() == 1) throw UserError(items[0]);
  std::string msg = fmt::format("{} configuration errors:", items.size());
  for (const std::string& s : items) msg += "\n" + s;
  throw UserError(msg);
}

std::string l12(const std::string& what, const std::string& fix) {
  return fmt::format("layout error L12: {}\n  fix: {}", what, fix);
}

// Problems shared by both constructors: sizes ≥ 1, vpp > 1 needs pp ≥ 2.
void check_sizes(int layers, int pp, int vpp, std::vector<std::string>& items) {
  if (layers < 1)
    items.push_back(l12(fmt::format("[model] layers = {} must be >= 1 for a pipeline.", layers), "set layers >= 1."));
  if (pp < 1) items.push_back(l12(fmt::format("[parallel] pp = {} must be >= 1.", pp), "set pp >= 1."));
  if (vpp < 1) items.push_back(l12(fmt::format("[parallel] vpp = {} must be >= 1.", vpp), "set vpp >= 1."));
  if (vpp > 1 && pp < 2)
    items.push_back(
        l12(fmt::format("[parallel] vpp = {} needs pp >= 2 (got pp = {}).", vpp, pp), "set vpp = 1, or pp >= 2."));
}

}  // namespace

PipelineLayout::PipelineLayout(int layers, int pp, int vpp, const std::vector<int>& counts)
    : layers_(layers), pp_(pp), vpp_(vpp), by_vstage_(counts.size()), vstage_of_layer_(size_t(layers)) {
  int next = 0;
  for (size_t s = 0; s < counts.size(); ++s)
    for (int i = 0; i < counts[s]; ++i) {
      by_vstage_[s].push_back(next);
      vstage_of_layer_[size_t(next)] = int(s);
      ++next;
    }
  FOLDMOE_CHECK(next == layers, "pipeline layout covers {} of {} layers", next, layers);
}

PipelineLayout PipelineLayout::even(int layers, int pp, int vpp) {
  std::vector<std::string> items;
  check_sizes(layers, pp, vpp, items);
  if (items.empty()) {
    if (vpp == 1 && layers % pp != 0)
      items.push_back(
          l12(fmt::format("[model] layers = {} is not divisible by pp = {} (even pipeline split).", layers, pp),
              fmt::format("choose pp dividing {}, or give an explicit per-stage layer list summing to {}.", layers,
                          layers)));
    else if (vpp > 1 && layers % (pp * vpp) != 0)
      items.push_back(
          l12(fmt::format("[model] layers = {} is not divisible by pp*vpp = {}*{} = {}.", layers, pp, vpp, pp * vpp),
              fmt::format("choose pp and vpp whose product divides {}, or set vpp = 1.", layers)));
    else if (layers < pp * vpp)
      items.push_back(
          l12(fmt::format("[model] layers = {} is fewer than pp*vpp = {} virtual stages.", layers, pp * vpp),
              "use fewer stages or more layers."));
  }
  raise_l12(items);
  return PipelineLayout(layers, pp, vpp, std::vector<int>(size_t(pp * vpp), layers / (pp * vpp)));
}

PipelineLayout PipelineLayout::explicit_counts(int layers, int pp, const std::vector<int>& counts, int vpp) {
  std::vector<std::string> items;
  check_sizes(layers, pp, vpp, items);
  raise_l12(items);
  const int n = pp * vpp;
  if (int(counts.size()) != n)
    items.push_back(l12(
        fmt::format(
            "the explicit pipeline layer list has {} entries; pp*vpp = {}*{} = {} are needed (one per virtual stage).",
            counts.size(), pp, vpp, n),
        fmt::format("give exactly {} layer counts.", n)));
  for (size_t s = 0; s < counts.size(); ++s)
    if (counts[s] < 1)
      items.push_back(l12(fmt::format("the explicit pipeline layer list gives virtual stage {} (stage {}, chunk {}) {} "
                                      "layers; each needs >= 1.",
                                      s, int(s) % pp, int(s) / pp, counts[s]),
                          "give every stage at least one layer."));
  const long sum = std::accumulate(counts.begin(), counts.end(), 0L);
  if (sum != layers)
    items.push_back(
        l12(fmt::format("the explicit pipeline layer list sums to {} but [model] layers = {}.", sum, layers),
            fmt::format("make the counts sum to {} (e.g. move {} layer(s) {} a stage).", layers,
                        sum > layers ? sum - layers : layers - sum, sum > layers ? "off" : "onto")));
  raise_l12(items);
  return PipelineLayout(layers, pp, vpp, counts);
}

const std::vector<int>& PipelineLayout::layers_of(int stage, int chunk) const {
  FOLDMOE_CHECK(stage >= 0 && stage < pp_ && chunk >= 0 && chunk < vpp_,
                "stage {} chunk {} out of range (pp {}, vpp {})", stage, chunk, pp_, vpp_);
  return by_vstage_[size_t(virtual_stage(stage, chunk))];
}

std::vector<int> PipelineLayout::stage_layers(int stage) const {
  std::vector<int> out;
  for (int c = 0; c < vpp_; ++c) {
    const std::vector<int>& l = layers_of(stage, c);
    out.insert(out.end(), l.begin(), l.end());
  }
  return out;
}

int PipelineLayout::stage_of_layer(int layer) const {
  FOLDMOE_CHECK(layer >= 0 && layer < layers_, "layer {} out of range [0, {})", layer, layers_);
  return vstage_of_layer_[size_t(layer)] % pp_;
}

int PipelineLayout::chunk_of_layer(int layer) const {
  FOLDMOE_CHECK(layer >= 0 && layer < layers_, "layer {} out of range [0, {})", layer, layers_);
  return vstage_of_layer_[size_t(layer)] / pp_;
}

}  // namespace foldmoe
