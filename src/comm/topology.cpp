#include "comm/topology.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "core/check.h"
#include "model/config.h"

namespace foldmoe {

// ---------------------------------------------------------------------------------------------
// Generator (spec 01 §2.2, §2.3)

RankGrid::RankGrid(const std::array<int, 5>& order_tokens, const std::array<int, 5>& sizes_by_token)
    : order_(order_tokens), sizes_(sizes_by_token), world_(1) {
  for (int s : sizes_) {
    FOLDMOE_CHECK(s >= 1, "grid size {} < 1", s);
    world_ *= s;
  }
}

int RankGrid::stride(int token) const {
  int st = 1;
  for (int i = 0; i < 5 && order_[size_t(i)] != token; ++i) st *= sizes_[size_t(order_[size_t(i)])];
  return st;
}

int RankGrid::coordinate(int rank, int token) const { return (rank / stride(token)) % size(token); }

RankGroups RankGrid::groups(std::initializer_list<int> request) const {
  return groups(std::vector<int>(request));
}

RankGroups RankGrid::groups(const std::vector<int>& request) const {
  std::vector<int> masked, unmasked;  // positions in order-string order
  for (int i = 0; i < 5; ++i) {
    const int t = order_[size_t(i)];
    (std::find(request.begin(), request.end(), t) != request.end() ? masked : unmasked).push_back(i);
  }
  std::array<int, 5> strides{};
  for (int i = 0, st = 1; i < 5; ++i) strides[size_t(i)] = st, st *= sizes_[size_t(order_[size_t(i)])];
  int gsize = 1;
  for (int i : masked) gsize *= sizes_[size_t(order_[size_t(i)])];
  // Σ digits(x, radices of `pos`)·stride: digits with the first position fastest.
  const auto place = [&](int x, const std::vector<int>& pos) {
    int r = 0;
    for (int i : pos) {
      const int radix = sizes_[size_t(order_[size_t(i)])];
      r += (x % radix) * strides[size_t(i)];
      x /= radix;
    }
    return r;
  };
  RankGroups out(size_t(world_ / gsize));
  for (int g = 0; g < world_ / gsize; ++g) {
    const int base = place(g, unmasked);
    std::vector<int>& members = out[size_t(g)];
    members.resize(size_t(gsize));
    for (int m = 0; m < gsize; ++m) members[size_t(m)] = base + place(m, masked);
  }
  return out;
}

std::string parse_order(std::string_view order, std::array<int, 5>& tokens) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    const size_t dash = order.find('-', start);
    parts.push_back(order.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start));
    if (dash == std::string_view::npos) break;
    start = dash + 1;
  }
  std::array<bool, 5> seen{};
  std::vector<int> got;
  for (std::string_view p : parts) {
    const auto it = std::find(kOrderTokens.begin(), kOrderTokens.end(), p);
    if (it == kOrderTokens.end()) return fmt::format("unknown token \"{}\"", p);
    const int t = int(it - kOrderTokens.begin());
    if (seen[size_t(t)]) return fmt::format("duplicate token \"{}\"", p);
    seen[size_t(t)] = true;
    got.push_back(t);
  }
  for (int t = 0; t < 5; ++t)
    if (!seen[size_t(t)]) return fmt::format("missing token \"{}\"", kOrderTokens[size_t(t)]);
  std::copy(got.begin(), got.end(), tokens.begin());
  return "";
}

LayoutSpec LayoutSpec::from_config(const Config& c, int world) {
  LayoutSpec s;
  s.world = world;
  s.tp = c.parallel.tp, s.cp = c.parallel.cp, s.pp = c.parallel.pp, s.ep = c.parallel.ep;
  s.etp = c.parallel.etp, s.order = c.parallel.order, s.vpp = c.parallel.vpp;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Layout rules (spec 01 §5)

namespace {

struct Problems {
  std::vector<std::string> items;
  void add(std::string_view id, const std::string& what, const std::string& fix) {
    items.push_back(fmt::format("layout error {}: {}\n  fix: {}", id, what, fix));
  }
};

// A single-knob change making prod(knobs) divide `world`: for each knob in turn (first preferred),
// the divisor of world / (product of the others) closest to its current value (larger on ties).
// Returns "(e.g. pp=3 gives 12)" or "".
std::string divisor_hint(int world, const std::vector<std::pair<std::string_view, int>>& knobs) {
  for (size_t k = 0; k < knobs.size(); ++k) {
    int64_t others = 1;
    for (size_t j = 0; j < knobs.size(); ++j)
      if (j != k) others *= knobs[j].second;
    if (others <= 0 || world % others != 0) continue;
    const int64_t room = world / others;
    int64_t best = -1;
    for (int64_t d = 1; d <= room; ++d) {
      if (room % d != 0 || d == knobs[k].second) continue;
      if (best < 0 || std::llabs(d - knobs[k].second) < std::llabs(best - knobs[k].second) ||
          (std::llabs(d - knobs[k].second) == std::llabs(best - knobs[k].second) && d > best))
        best = d;
    }
    if (best > 0) return fmt::format(" (e.g. {}={} gives {})", knobs[k].first, best, others * best);
  }
  return "";
}

std::string dot_join(const std::vector<std::string>& xs) {
  std::string out;
  for (const std::string& x : xs) out += (out.empty() ? "" : "·") + x;
  return out;
}

void world_rules(const LayoutSpec& s, Problems& p) {
  const auto ge1 = [&](std::string_view key, int v) {
    if (v < 1)
      p.add("L1", fmt::format("{} = {} must be an integer >= 1.", key, v),
            fmt::format("set {} = 1 to disable this dimension.", key));
  };
  if (s.world < 1) p.add("L1", fmt::format("world size {} must be >= 1.", s.world), "launch at least one rank.");
  ge1("tp", s.tp);
  ge1("cp", s.cp);
  ge1("pp", s.pp);
  ge1("ep", s.ep);
  ge1("vpp", s.vpp);
  if (s.etp < 0)
    p.add("L1", fmt::format("etp = {} must be >= 1, or 0 for etp = tp.", s.etp),
          "set etp = 0 (same as tp) or a positive size.");
  std::array<int, 5> order{};
  const std::string bad = parse_order(s.order, order);
  if (!bad.empty())
    p.add("L2", fmt::format("order \"{}\" is not a permutation of tp, cp, ep, dp, pp joined by '-': {}.", s.order, bad),
          "use e.g. order tp-cp-ep-dp-pp (every token exactly once).");
  if (s.world < 1 || s.tp < 1 || s.cp < 1 || s.pp < 1 || s.ep < 1 || s.etp < 0) return;
  const int W = s.world, tp = s.tp, cp = s.cp, pp = s.pp, ep = s.ep, etp = s.etp > 0 ? s.etp : s.tp;
  const int64_t att = int64_t(tp) * cp * pp, exp = int64_t(etp) * ep * pp;
  bool ok = true;
  if (W % att != 0) {
    ok = false;
    p.add("L3", fmt::format("world size {} is not divisible by tp·cp·pp = {}·{}·{} = {}.", W, tp, cp, pp, att),
          fmt::format("use a world size that is a multiple of {}, or change tp/cp/pp{}.", att,
                      divisor_hint(W, {{"pp", pp}, {"cp", cp}, {"tp", tp}})));
  }
  if (W % exp != 0) {
    ok = false;
    p.add("L4", fmt::format("world size {} is not divisible by etp·ep·pp = {}·{}·{} = {}.", W, etp, ep, pp, exp),
          fmt::format("use a world size that is a multiple of {}, or change etp/ep{}.", exp,
                      divisor_hint(W, {{"ep", ep}, {"etp", etp}, {"pp", pp}})));
  }
  if (!ok || !bad.empty() || pp == 1) return;
  const int dp = int(W / att), edp = int(W / exp);
  // Π of each grid's sizes over the tokens before / after pp.
  const std::array<int, 5> asz = {tp, cp, 1, dp, pp}, esz = {etp, 1, ep, edp, pp};
  static constexpr std::array<std::string_view, 5> kExpertNames = {"etp", "cp", "ep", "edp", "pp"};
  std::vector<std::string> an_before, en_before, an_after, en_after;
  int64_t a_before = 1, e_before = 1, a_after = 1, e_after = 1;
  bool before = true;
  for (int i = 0; i < 5; ++i) {
    const int t = order[size_t(i)];
    if (t == kPP) {
      before = false;
      continue;
    }
    // Tokens that are always 1 in a grid (ep in attention, cp in expert) are not named.
    if (t != kEP) (before ? an_before : an_after).push_back(std::string(kOrderTokens[size_t(t)]));
    if (t != kCP) (before ? en_before : en_after).push_back(std::string(kExpertNames[size_t(t)]));
    (before ? a_before : a_after) *= asz[size_t(t)];
    (before ? e_before : e_after) *= esz[size_t(t)];
  }
  if (a_before == e_before) return;
  std::string fixed;
  for (int i = 0; i < 5; ++i)
    if (order[size_t(i)] != kPP) fixed += fmt::format("{}-", kOrderTokens[size_t(order[size_t(i)])]);
  fixed += "pp";
  const auto names = [](const std::vector<std::string>& v) { return v.empty() ? std::string("(none)") : dot_join(v); };
  p.add("L5",
        fmt::format("with order {} the pipeline groups of the two grids differ\n  (attention {} = {} ranks before pp, "
                    "expert {} = {}; equivalently {}={} != {}={}).",
                    s.order, names(an_before), a_before, names(en_before), e_before, names(en_after), e_after,
                    names(an_after), a_after),
        fmt::format("use order {} (pp last), or make {} equal {}.", fixed, names(en_before), names(an_before)));
}

void model_rules(const LayoutSpec& s, const Config& c, Problems& p) {
  if (s.tp < 1 || s.cp < 1 || s.pp < 1 || s.ep < 1 || s.etp < 0 || s.vpp < 1) return;
  const int tp = s.tp, cp = s.cp, pp = s.pp, v = s.vpp, ep = s.ep, etp = s.etp > 0 ? s.etp : s.tp;
  const int L = c.model.layers, S = c.train.seq_len, E = c.moe.num_experts;
  const bool sp = c.parallel.sequence_parallel;
  bool has_moe = false, has_dense = false;
  for (int i = 0; i < L; ++i) (c.is_moe_layer(i) ? has_moe : has_dense) = true;
  if (has_moe && E > 0 && E % ep != 0)
    p.add("L6", fmt::format("ep={} does not divide num_experts={} (each EP rank owns num_experts/ep experts).", ep, E),
          fmt::format("choose ep dividing {} (e.g. ep={}), or change [moe] num_experts.", E, std::gcd(E, ep)));
  if (c.train.global_batch > 0 && tp * cp * pp > 0 && s.world % (tp * cp * pp) == 0) {
    const int dp = s.world / (tp * cp * pp), B = c.train.micro_batch;
    if (c.train.global_batch % (B * dp) != 0)
      p.add("L13", fmt::format("[train] global_batch={} is not divisible by micro_batch·dp = {}·{} = {}.",
                               c.train.global_batch, B, dp, B * dp),
            fmt::format("use a global_batch that is a multiple of {} (e.g. {}), or change micro_batch.", B * dp,
                        std::max(1, c.train.global_batch / (B * dp)) * B * dp));
  }
  if (has_moe && tp > 1 && !sp)
    p.add("L7", fmt::format("tp={} with MoE layers requires [parallel] sequence_parallel = true (got false).", tp),
          "set [parallel] sequence_parallel = true, or tp=1.");
  if (cp > 1 && S % (2 * cp) != 0)
    p.add("L8", fmt::format("[train] seq_len={} is not divisible by 2·cp = {} (context parallelism cuts each sequence into 2·cp chunks).", S, 2 * cp),
          fmt::format("use a seq_len that is a multiple of {}, or change cp.", 2 * cp));
  else if (tp > 1 && sp && S > 0 && (S / cp) % tp != 0)
    p.add("L9", fmt::format("[train] seq_len / cp = {} / {} = {} is not divisible by tp={} (sequence parallelism).", S, cp, S / cp, tp),
          fmt::format("use a seq_len that is a multiple of {}, or change tp.", tp * cp * (cp > 1 ? 2 : 1)));
  if (has_moe && c.moe_ffn() > 0 && c.moe_ffn() % etp != 0)
    p.add("L10", fmt::format("expert FFN size F_moe = {} ([moe] ffn_hidden_size) is not divisible by etp={}.", c.moe_ffn(), etp),
          fmt::format("choose etp dividing {} (e.g. etp=1), or change [moe] ffn_hidden_size.", c.moe_ffn()));
  if (has_dense && c.model.ffn > 0 && c.model.ffn % tp != 0)
    p.add("L10", fmt::format("dense FFN size [model] ffn = {} is not divisible by tp={}.", c.model.ffn, tp),
          "choose tp dividing ffn, or change [model] ffn.");
  if (has_moe && c.moe.shared_expert_ffn_hidden_size > 0 && c.moe.shared_expert_ffn_hidden_size % tp != 0)
    p.add("L10", fmt::format("shared expert FFN size [moe] shared_expert_ffn_hidden_size = {} is not divisible by tp={}.",
                             c.moe.shared_expert_ffn_hidden_size, tp),
          "choose tp dividing the shared expert width.");
  if (c.model.heads > 0 && c.model.heads % tp != 0)
    p.add("L11", fmt::format("[model] heads = {} is not divisible by tp={}.", c.model.heads, tp), "choose tp dividing heads.");
  if (c.model.kv_heads > 0 && c.model.kv_heads % tp != 0)
    p.add("L11", fmt::format("[model] kv_heads = {} is not divisible by tp={}.", c.model.kv_heads, tp),
          "choose tp dividing kv_heads, or raise kv_heads.");
  if (c.model.heads > 0 && c.model.kv_heads > 0 && c.model.heads % c.model.kv_heads != 0)
    p.add("L11", fmt::format("[model] heads = {} is not divisible by kv_heads = {}.", c.model.heads, c.model.kv_heads),
          "set kv_heads to a divisor of heads.");
  {
    Config split = c;  // the layout's pp/vpp, the config's layers and explicit split
    split.parallel.pp = pp, split.parallel.vpp = v;
    for (const auto& [what, fix] : split.pipeline_split_problems()) p.add("L12", what, fix);
  }
  if (v > 1 && pp >= 2) {
    // L14 with the default micro-batch group size g = pp: PP <= g <= M and M mod g = 0 (or >= PP,
    // which with g = PP is the same condition).
    const int M = c.micro_batches_per_replica(std::max(1, s.world / std::max(1, s.tp * s.cp * pp)));
    if (pp >= 2 && M >= 1 && (M < pp || M % pp != 0))
      p.add("L14", fmt::format("interleaved pipeline (vpp={}): micro-batch count M = [train] micro_batches = {} must be a "
                               "multiple of the group size g = pp = {}.", v, M, pp),
            fmt::format("set micro_batches to a multiple of {}, or vpp=1.", pp));
  }
}

}  // namespace

std::vector<std::string> layout_errors(const LayoutSpec& spec, const Config* model) {
  Problems p;
  world_rules(spec, p);
  if (model) model_rules(spec, *model, p);
  // Keep rule order L1..L14 even though L6+ were added after the world rules.
  std::stable_sort(p.items.begin(), p.items.end(), [](const std::string& a, const std::string& b) {
    const auto id = [](const std::string& s) { return std::atoi(s.c_str() + std::string_view("layout error L").size()); };
    return id(a) < id(b);
  });
  return p.items;
}

void validate_layout(const LayoutSpec& spec, const Config* model) {
  const std::vector<std::string> errs = layout_errors(spec, model);
  if (errs.empty()) return;
  if (errs.size() == 1) throw UserError(errs[0]);
  std::string msg = fmt::format("{} layout errors:", errs.size());
  for (const std::string& e : errs) msg += "\n" + e;
  throw UserError(msg);
}

// ---------------------------------------------------------------------------------------------
// Topology

Topology::Topology(const LayoutSpec& spec) {
  validate_layout(spec);
  std::array<int, 5> order{};
  parse_order(spec.order, order);
  order_ = spec.order;
  ParallelSizes& s = sizes_;
  s.world = spec.world, s.tp = spec.tp, s.cp = spec.cp, s.pp = spec.pp, s.ep = spec.ep;
  s.etp = spec.etp > 0 ? spec.etp : spec.tp;
  s.dp = s.world / (s.tp * s.cp * s.pp);
  s.edp = s.world / (s.etp * s.ep * s.pp);
  attention_ = RankGrid(order, {s.tp, s.cp, 1, s.dp, s.pp});
  expert_ = RankGrid(order, {s.etp, 1, s.ep, s.edp, s.pp});

  TopologyGroups& g = groups_;
  const RankGrid& a = attention_;
  g.tp = a.groups({kTP});
  g.cp = a.groups({kCP});
  g.dp = a.groups({kDP});
  g.pp = a.groups({kPP});
  g.dp_cp = a.groups({kDP, kCP});
  g.tp_cp = a.groups({kTP, kCP});
  g.tp_pp = a.groups({kTP, kPP});
  g.tp_dp_cp = a.groups({kTP, kDP, kCP});
  for (const std::vector<int>& m : g.pp) {
    g.embedding.push_back(m.size() > 1 ? std::vector<int>{m.front(), m.back()} : std::vector<int>{m.front()});
    g.position_embedding.push_back({m.front()});
  }
  const RankGrid& e = expert_;
  g.etp = e.groups({kTP});
  g.ep = e.groups({kEP});
  g.edp = e.groups({kDP});
  g.etp_ep = e.groups({kTP, kEP});
  g.etp_ep_pp = e.groups({kTP, kEP, kPP});
  g.expert_pp = e.groups({kPP});
  FOLDMOE_CHECK(g.expert_pp == g.pp, "pipeline groups of the two grids differ despite rule L5");
}

RankCoords Topology::coords(int rank) const {
  FOLDMOE_CHECK(rank >= 0 && rank < sizes_.world, "rank {} outside world {}", rank, sizes_.world);
  RankCoords c;
  c.tp = attention_.coordinate(rank, kTP);
  c.cp = attention_.coordinate(rank, kCP);
  c.dp = attention_.coordinate(rank, kDP);
  c.pp = attention_.coordinate(rank, kPP);
  c.etp = expert_.coordinate(rank, kTP);
  c.ep = expert_.coordinate(rank, kEP);
  c.edp = expert_.coordinate(rank, kDP);
  return c;
}

std::string Topology::folding() const {
  const int64_t fold = int64_t(sizes_.etp) * sizes_.ep, tc = int64_t(sizes_.tp) * sizes_.cp;
  if (fold == tc) return "onto TP×CP";
  if (fold < tc) return tc % fold == 0 ? "within TP×CP" : "straddling TP×CP groups";
  return "spanning DP replicas";
}

std::pair<int, int> Topology::locate(const RankGroups& groups, int rank) {
  for (size_t g = 0; g < groups.size(); ++g)
    for (size_t m = 0; m < groups[g].size(); ++m)
      if (groups[g][m] == rank) return {int(g), int(m)};
  return {-1, -1};
}

}  // namespace foldmoe
