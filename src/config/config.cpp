#include "config/config.h"

namespace foldmoe {

bool Config::is_moe_layer(int layer) const {
  if (moe.num_experts <= 0 || layer < 0) return false;
  if (moe.layer_freq.size() == 1) {
    const int f = moe.layer_freq[0];
    return f > 0 && layer % f == 0;
  }
  return layer < static_cast<int>(moe.layer_freq.size()) && moe.layer_freq[size_t(layer)] == 1;
}

}  // namespace foldmoe
