#include "core/arena.h"

#include <algorithm>

#include "core/rng.h"

namespace foldmoe {

float* Param::w() const { return arena->params() + arena->offset(index); }
float* Param::g() const { return arena->grads() + arena->offset(index); }
const ParamSpec& Param::spec() const { return arena->spec(index); }
int64_t Param::numel() const { return shape_numel(spec().shape); }

Param ParamArena::add(ParamSpec spec) {
  FOLDMOE_CHECK(!allocated_, "parameter {} added after allocation", spec.name);
  FOLDMOE_CHECK(find(spec.name) < 0, "duplicate parameter {}", spec.name);
  if (spec.global_shape.empty()) spec.global_shape = spec.shape;
  const int64_t n = shape_numel(spec.shape);
  offsets_.push_back(total_);
  total_ += (n + kAlign - 1) / kAlign * kAlign;
  specs_.push_back(std::move(spec));
  return Param{this, int(specs_.size()) - 1};
}

void ParamArena::allocate(int64_t pad_multiple) {
  FOLDMOE_CHECK(!allocated_, "arena allocated twice");
  FOLDMOE_CHECK(pad_multiple >= 1, "pad multiple {}", pad_multiple);
  total_ = (total_ + pad_multiple - 1) / pad_multiple * pad_multiple;
  params_.assign(size_t(total_), 0.0f);
  grads_.assign(size_t(total_), 0.0f);
  allocated_ = true;
}

void init_param_values(const ParamSpec& spec, uint64_t seed, float* out, int64_t n) {
  switch (spec.init) {
    case InitKind::Ones: std::fill(out, out + n, 1.0f); return;
    case InitKind::Zeros: std::fill(out, out + n, 0.0f); return;
    case InitKind::Normal: {
      const CounterRng rng(seed, spec.name);
      for (int64_t i = 0; i < n; ++i) {
        const int64_t gi = spec.global_index ? spec.global_index(i) : i;
        out[i] = gi < 0 ? 0.0f : float(spec.init_std * rng.normal(uint64_t(gi)));  // gi < 0: padding
      }
      return;
    }
  }
}

void ParamArena::initialize(uint64_t seed) {
  FOLDMOE_CHECK(allocated_, "initialize before allocate");
  for (int i = 0; i < size(); ++i)
    init_param_values(specs_[size_t(i)], seed, params_.data() + offsets_[size_t(i)], shape_numel(specs_[size_t(i)].shape));
}

void ParamArena::zero_grad() { std::fill(grads_.begin(), grads_.end(), 0.0f); }

int ParamArena::find(const std::string& name) const {
  for (int i = 0; i < size(); ++i)
    if (specs_[size_t(i)].name == name) return i;
  return -1;
}

}  // namespace foldmoe
