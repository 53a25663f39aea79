// Helpers of the module-level "sharded vs unsharded" tests under mpirun: process groups of a
// layout over the world, deterministic data, closeness checks that name the rank, and the
// logical (world-summed) view of sharded gradients.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "comm/topology.h"
#include "core/arena.h"
#include "core/rng.h"
#include "parallel_env.h"

namespace foldmoe::partest {

// (TP, EP, ETP) of a layout; DP and EDP follow from the world size. CP = PP = 1.
struct Layout {
  int tp = 1, ep = 1, etp = 1;
  std::string str() const {
    return "TP" + std::to_string(tp) + "_EP" + std::to_string(ep) + "_ETP" + std::to_string(etp);
  }
  bool fits(int W) const { return W % tp == 0 && W % (ep * etp) == 0; }
};

// Process groups of a layout over the world (collective: every rank must call it with the same
// layout in the same order).
inline ProcessGroups layout_groups(const Layout& l) {
  const Topology topo(LayoutSpec{.world = world().size(), .tp = l.tp, .ep = l.ep, .etp = l.etp});
  return make_process_groups(topo, world());
}

// Keeps the layouts that fit the world size; fails (on every rank) if none does, so no world
// size silently runs nothing.
inline std::vector<Layout> fitting(const std::vector<Layout>& all) {
  std::vector<Layout> out;
  for (const Layout& l : all)
    if (l.fits(world().size())) out.push_back(l);
  EXPECT_FALSE(out.empty()) << "no layout fits world size " << world().size();
  return out;
}

inline std::vector<float> randn(int64_t n, uint64_t seed, const char* tag, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  const CounterRng rng(seed, tag);
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = scale * float(rng.normal(uint64_t(i)));
  return v;
}

inline double max_abs(const float* a, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i])));
  return m;
}

// |got − want| ≤ atol + rtol·(|want| + max|want|): relative to the element and to the tensor's
// scale (elements that cancel to ~0 are judged against the scale); with elementwise = true the
// plain |got − want| ≤ atol + rtol·|want|. Reports the first few mismatches with the rank and
// returns whether all matched.
inline bool expect_close(const float* got, const float* want, int64_t n, double rtol, double atol,
                         const std::string& what, bool elementwise = false) {
  const double scale = elementwise ? 0.0 : max_abs(want, n);
  int bad = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = std::fabs(double(got[i]) - double(want[i]));
    if (!(d <= atol + rtol * (std::fabs(double(want[i])) + scale))) {
      if (++bad <= 3)
        ADD_FAILURE() << "[rank " << world().rank() << "] " << what << "[" << i << "]: got " << got[i] << " want "
                      << want[i] << " (|diff| " << d << ", scale " << scale << ")";
    }
  }
  if (bad > 3) ADD_FAILURE() << "[rank " << world().rank() << "] " << what << ": " << bad << " mismatches of " << n;
  return bad == 0;
}
inline bool expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol, double atol,
                         const std::string& what, bool elementwise = false) {
  EXPECT_EQ(got.size(), want.size()) << what;
  return expect_close(got.data(), want.data(), int64_t(std::min(got.size(), want.size())), rtol, atol, what,
                      elementwise);
}

// Logical gradients of the named parameters of `a`: each local element is added at its global
// index into a zero logical buffer, then the buffers are summed over the whole world. When every
// rank holds a distinct token set this is the gradient of the sum of all ranks' losses, i.e. what
// one process computes on all tokens: a sharded parameter gets each shard from every token set,
// a replicated (SP-flagged) one the sum of its per-token-set partials, an expert the sum over its
// edp replicas. Collective; every rank passes the same names (a rank that does not hold a
// parameter, e.g. another EP rank's expert, contributes zeros).
inline std::map<std::string, std::vector<float>> logical_grads(const ParamArena& a, const std::vector<std::string>& names) {
  std::map<std::string, std::vector<float>> out;
  for (const std::string& name : names) {
    const int i = a.find(name);
    std::vector<float>& buf = out[name];
    int64_t global = -1;
    if (i >= 0) {
      const ParamSpec& s = a.spec(i);
      global = shape_numel(s.global_shape.empty() ? s.shape : s.global_shape);
    }
    // Agree on the logical size (ranks that do not hold the parameter contribute zeros).
    double g = double(global);
    world().all_reduce(&g, 1, ReduceOp::Max);
    buf.assign(size_t(g), 0.0f);
    if (i >= 0) {
      const ParamSpec& s = a.spec(i);
      const float* grad = a.grads() + a.offset(i);
      const int64_t n = shape_numel(s.shape);
      for (int64_t e = 0; e < n; ++e) {
        const int64_t gi = s.global_index ? s.global_index(e) : e;
        if (gi >= 0) buf[size_t(gi)] += grad[e];
      }
    }
    world().all_reduce(buf.data(), int64_t(buf.size()));
  }
  return out;
}

// Gradient of one parameter of a single-process arena (shape = logical shape).
inline std::vector<float> ref_grad(const ParamArena& a, const std::string& name) {
  const int i = a.find(name);
  EXPECT_GE(i, 0) << name;
  if (i < 0) return {};
  const float* g = a.grads() + a.offset(i);
  return std::vector<float>(g, g + shape_numel(a.spec(i).shape));
}

inline std::vector<std::string> param_names(const ParamArena& a) {
  std::vector<std::string> v;
  for (int i = 0; i < a.size(); ++i) v.push_back(a.spec(i).name);
  return v;
}

}  // namespace foldmoe::partest
