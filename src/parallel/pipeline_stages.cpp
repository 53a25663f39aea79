#include "parallel/pipeline_stages.h"

#include <fmt/format.h>

#include <numeric>
#include <string>

#include "config/layout_rules.h"
#include "config/problems.h"
#include "core/check.h"

namespace foldmoe {

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

PipelineLayout PipelineLayout::even(int layers, int pp, int vpp) { return of(layers, pp, vpp, {}); }

PipelineLayout PipelineLayout::explicit_counts(int layers, int pp, const std::vector<int>& counts, int vpp) {
  FOLDMOE_CHECK(!counts.empty(), "explicit pipeline split without counts");
  return of(layers, pp, vpp, counts);
}

PipelineLayout PipelineLayout::of(int layers, int pp, int vpp, const std::vector<int>& counts) {
  // Sizes below 1 are rejected by config validation before any layout is built (docs/rules.md).
  FOLDMOE_CHECK(layers >= 1 && pp >= 1 && vpp >= 1, "pipeline layout of {} layers, pp {}, vpp {}", layers, pp, vpp);
  Problems p;
  pipeline_split_rules(layers, pp, vpp, counts, p);  // L12, the one copy of the rule
  p.raise();
  if (!counts.empty()) return PipelineLayout(layers, pp, vpp, counts);
  return PipelineLayout(layers, pp, vpp, std::vector<int>(size_t(pp * vpp), layers / (pp * vpp)));
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
