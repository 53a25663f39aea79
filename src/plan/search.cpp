#include "plan/search.h"

#include <algorithm>

#include "config/layout_rules.h"
#include "plan/step_model.h"

namespace foldmoe::plan {
namespace {

std::vector<int> divisors(int n, int cap) {
  std::vector<int> out;
  for (int d = 1; d <= std::min(n, cap); ++d)
    if (n % d == 0) out.push_back(d);
  return out;
}

LayoutSpec spec_of(const Workload& w, const PlanLayout& l) {
  return LayoutSpec{
      .world = w.gpus, .tp = l.tp, .cp = l.cp, .pp = l.pp, .ep = l.ep, .etp = l.etp, .order = l.order, .vpp = l.vpp};
}

}  // namespace

Config with_run(const Config& model, const Workload& w, const PlanLayout& l) {
  Config c = model;
  c.train.seq_len = w.seq;
  c.train.global_batch = w.global_batch;
  c.train.micro_batch = l.micro_batch;
  c.train.recompute = l.recompute;
  c.model.max_seq_len = std::max(c.model.max_seq_len, w.seq);
  c.parallel.tp = l.tp, c.parallel.cp = l.cp, c.parallel.pp = l.pp, c.parallel.vpp = l.vpp;
  c.parallel.ep = l.ep, c.parallel.etp = l.etp, c.parallel.order = l.order;
  c.parallel.distributed_optimizer = l.distributed_optimizer;
  c.parallel.sequence_parallel = true;
  c.parallel.pipeline_layers.clear();
  return c;
}

std::string plan_layout_errors(const Config& model, const Workload& w, const PlanLayout& l) {
  const Config c = with_run(model, w, l);
  std::string out;
  for (const std::string& e : layout_errors(spec_of(w, l), &c)) out += (out.empty() ? "" : "\n") + e;
  return out;
}

SearchResult search_layouts(const Config& m, const Workload& w, const Cluster& c) {
  SearchResult r;
  const int W = w.gpus, L = m.model.layers, E = std::max(1, m.moe.num_experts);
  const int node = c.devices_per_node;
  for (int tp : divisors(W, node))
    for (int cp : divisors(W / tp, W))
      for (int pp : divisors(W / (tp * cp), L)) {
        if (L % pp != 0) continue;
        const int dp = W / (tp * cp * pp);
        for (int vpp : divisors(L / pp, 8)) {
          if (vpp > 1 && pp < 2) continue;
          for (int ep : divisors(E, W / pp))
            for (int etp : divisors(W / (pp * ep), node)) {
              for (int mb = 1; mb <= 8; mb *= 2) {
                if (w.global_batch % (mb * dp) != 0) continue;
                PlanLayout l{.tp = tp, .cp = cp, .pp = pp, .vpp = vpp, .ep = ep, .etp = etp, .micro_batch = mb};
                if (!plan_layout_errors(m, w, l).empty()) continue;
                ++r.valid;
                for (const char* rc : {"none", "moe", "full"})
                  for (bool zero1 : {true, false}) {
                    if (std::string(rc) == "moe" && m.moe.num_experts == 0) continue;
                    l.recompute = rc, l.distributed_optimizer = zero1;
                    ++r.evaluated;
                    Prediction p = predict(m, w, l, c);
                    if (!p.fits) continue;
                    ++r.fitting;
                    r.ranked.push_back(std::move(p));
                  }
              }
            }
        }
      }
  std::stable_sort(r.ranked.begin(), r.ranked.end(), [](const Prediction& a, const Prediction& b) {
    return a.tokens_per_s_per_gpu > b.tokens_per_s_per_gpu;
  });
  return r;
}

}  // namespace foldmoe::plan
