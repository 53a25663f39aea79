#include "config/layout_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "config/config.h"

namespace foldmoe {

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

bool interleaving_has_stages(int pp, int v, Problems& p) {
  if (v <= 1 || pp >= 2) return true;
  p.add("L12", fmt::format("[parallel] vpp = {} (interleaved schedule) needs pp >= 2 (got pp = {}).", v, pp),
        "set vpp = 1, or pp >= 2.");
  return false;
}

void interleave_group_rule(int pp, int v, int M, int g, std::string_view m_source, Problems& p) {
  if (v <= 1 || pp < 2 || M < 1) return;
  if (g >= pp && g <= M && (M % g == 0 || M % g >= pp)) return;
  std::string why;
  if (g < pp)
    why = fmt::format("g = {} < pp = {}", g, pp);
  else if (g > M)
    why = fmt::format("g = {} > M = {}", g, M);
  else
    why = fmt::format("M mod g = {} mod {} = {} is neither 0 nor >= pp = {}", M, g, M % g, pp);
  const int gg = std::max(g, pp);
  const int m_fix = (std::max(M, gg) + gg - 1) / gg * gg;
  std::string fix = fmt::format("set micro_batches to a multiple of {} (e.g. {})", gg, m_fix);
  if (M >= pp && M % pp == 0 && g != pp)
    fix += fmt::format(", or the group size g = pp = {}", pp);
  else if (M >= pp && g != M)
    fix += fmt::format(", or the group size g = M = {}", M);
  fix += ", or vpp = 1.";
  p.add("L14",
        fmt::format("interleaved pipeline (vpp = {}): micro-batch group size g = {}, micro-batches M = {} ({}), "
                    "pp = {}: the rule pp <= g <= M and (M mod g = 0 or M mod g >= pp) fails: {}.",
                    v, g, M, m_source, pp, why),
        fix);
}

void pipeline_split_rules(int L, int pp, int v, const std::vector<int>& counts, Problems& p) {
  if (pp < 1 || v < 1 || L < 1) return;  // reported by their own rules
  if (!interleaving_has_stages(pp, v, p)) return;
  if (counts.empty()) {
    if (L % (pp * v) != 0)
      p.add("L12",
            v > 1 ? fmt::format("[model] layers = {} is not divisible by pp*vpp = {}*{} = {} (even pipeline split).", L,
                                pp, v, pp * v)
                  : fmt::format("[model] layers = {} is not divisible by pp = {} (even pipeline split).", L, pp),
            fmt::format("choose pp{} dividing layers, or list the layers per stage in [parallel] pipeline_layers.",
                        v > 1 ? "·vpp" : ""));
    return;
  }
  int sum = 0, first_empty = -1;
  for (size_t i = 0; i < counts.size(); ++i) {
    sum += counts[i];
    if (counts[i] < 1 && first_empty < 0) first_empty = int(i);
  }
  if (int(counts.size()) != pp * v)
    p.add("L12",
          fmt::format("[parallel] pipeline_layers has {} entries but pp*vpp = {}*{} = {} virtual stages.",
                      counts.size(), pp, v, pp * v),
          fmt::format("list one layer count per virtual stage ({} entries), or remove the key.", pp * v));
  if (first_empty >= 0)
    p.add("L12",
          fmt::format("[parallel] pipeline_layers has an entry < 1: virtual stage {} (stage {}, chunk {}) gets {} "
                      "layers; every virtual stage needs at least one.",
                      first_empty, first_empty % pp, first_empty / pp, counts[size_t(first_empty)]),
          "give every stage >= 1 layer.");
  if (sum != L)
    p.add("L12", fmt::format("[parallel] pipeline_layers sums to {} but [model] layers = {}.", sum, L),
          fmt::format("make the counts sum to {} (move {} layer(s) {} a stage).", L, std::abs(sum - L),
                      sum > L ? "off" : "onto"));
}

namespace {

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

// Above this a size is refused (L1): products such as pp·vpp and 2·cp then stay far inside int.
constexpr int kMaxParallelSize = 1 << 15;

bool sizes_valid(const LayoutSpec& s) {
  const auto in = [](int v, int lo) { return v >= lo && v <= kMaxParallelSize; };
  return in(s.tp, 1) && in(s.cp, 1) && in(s.pp, 1) && in(s.ep, 1) && in(s.etp, 0) && in(s.vpp, 1);
}

// L1 and L2.
void size_and_order_rules(const LayoutSpec& s, Problems& p) {
  const auto ge1 = [&](std::string_view key, int v) {
    if (v < 1)
      p.add("L1", fmt::format("[parallel] {} = {} must be an integer >= 1.", key, v),
            fmt::format("set [parallel] {} = 1 to disable this dimension.", key));
    else if (v > kMaxParallelSize)
      p.add("L1", fmt::format("[parallel] {} = {} is more than {} ranks.", key, v, kMaxParallelSize),
            fmt::format("use a smaller [parallel] {}.", key));
  };
  ge1("tp", s.tp);
  ge1("cp", s.cp);
  ge1("pp", s.pp);
  ge1("vpp", s.vpp);
  ge1("ep", s.ep);
  if (s.etp < 0)
    p.add("L1", fmt::format("[parallel] etp = {} must be >= 1, or 0 for etp = tp.", s.etp),
          "set [parallel] etp = 0 (same as tp) or a positive size.");
  else if (s.etp > kMaxParallelSize)
    p.add("L1", fmt::format("[parallel] etp = {} is more than {} ranks.", s.etp, kMaxParallelSize),
          "use a smaller [parallel] etp.");
  std::array<int, 5> order{};
  const std::string bad = parse_order(s.order, order);
  if (!bad.empty())
    p.add("L2",
          fmt::format("[parallel] order = \"{}\" is not a permutation of tp, cp, ep, dp, pp joined by '-': {}.",
                      s.order, bad),
          "use e.g. order = \"tp-cp-ep-dp-pp\" (every token exactly once).");
}

// L3, L4, L5 (world size known; L1 for the world itself).
void world_rules(const LayoutSpec& s, Problems& p) {
  if (s.world < 1) p.add("L1", fmt::format("world size {} must be >= 1.", s.world), "launch at least one rank.");
  std::array<int, 5> order{};
  const bool order_ok = parse_order(s.order, order).empty();
  if (s.world < 1 || !sizes_valid(s)) return;
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
  if (!ok || !order_ok || pp == 1) return;
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

// L6–L14. `world_known`: L13, and L14 with a global batch, need the data-parallel size.
void model_rules(const LayoutSpec& s, const Config& c, bool world_known, Problems& p) {
  if (!sizes_valid(s)) return;
  const int tp = s.tp, cp = s.cp, pp = s.pp, v = s.vpp, ep = s.ep, etp = s.etp > 0 ? s.etp : s.tp;
  const int L = c.model.layers, S = c.train.seq_len, E = c.moe.num_experts;
  const bool sp = c.parallel.sequence_parallel;
  bool has_moe = false, has_dense = false;
  // The first layer_freq-list-size + 1 layers show both kinds (a scalar frequency repeats from
  // layer 0; layers past a list are dense): a huge layers value costs no pass over every layer.
  const int scan = int(std::min<int64_t>(L, int64_t(c.moe.layer_freq.size()) + 1));
  for (int i = 0; i < scan; ++i) (c.is_moe_layer(i) ? has_moe : has_dense) = true;
  if (has_moe && E > 0 && E % ep != 0)
    p.add("L6",
          fmt::format("[parallel] ep = {} does not divide [moe] num_experts = {} (each EP rank owns num_experts / ep "
                      "experts).",
                      ep, E),
          fmt::format("choose ep dividing {} (e.g. ep = {}), or change [moe] num_experts.", E, std::gcd(E, ep)));
  if (has_moe && tp > 1 && !sp)
    p.add("L7", fmt::format("[parallel] tp = {} with MoE layers requires sequence_parallel = true (got false).", tp),
          "set [parallel] sequence_parallel = true, or tp = 1.");
  if (cp > 1 && S % (2 * cp) != 0)
    p.add("L8",
          fmt::format("[train] seq_len = {} is not divisible by 2*cp = {} (context parallelism cuts each sequence "
                      "into 2*cp chunks).",
                      S, 2 * cp),
          fmt::format("use a seq_len that is a multiple of {}, or change cp.", 2 * cp));
  else if (tp > 1 && sp && S > 0 && (S / cp) % tp != 0)
    p.add("L9",
          fmt::format("[train] seq_len / cp = {} / {} = {} is not divisible by tp = {} (sequence parallelism).", S, cp,
                      S / cp, tp),
          fmt::format("use a seq_len that is a multiple of {}, or change tp.", tp * cp * (cp > 1 ? 2 : 1)));
  if (has_moe && c.moe_ffn() > 0 && c.moe_ffn() % etp != 0)
    p.add("L10",
          fmt::format("expert width F_moe = {} ([moe] ffn_hidden_size, 0 = [model] ffn) is not divisible by etp = {}.",
                      c.moe_ffn(), etp),
          fmt::format("choose etp dividing {} (e.g. etp = 1), or change [moe] ffn_hidden_size.", c.moe_ffn()));
  if (has_dense && c.model.ffn > 0 && c.model.ffn % tp != 0)
    p.add("L10", fmt::format("dense width [model] ffn = {} is not divisible by tp = {}.", c.model.ffn, tp),
          "choose tp dividing ffn, or change [model] ffn.");
  if (has_moe && c.moe.shared_expert_ffn_hidden_size > 0 && c.moe.shared_expert_ffn_hidden_size % tp != 0)
    p.add("L10",
          fmt::format("[moe] shared_expert_ffn_hidden_size = {} is not divisible by tp = {}.",
                      c.moe.shared_expert_ffn_hidden_size, tp),
          "choose tp dividing the shared expert width.");
  if (c.model.heads > 0 && c.model.heads % tp != 0)
    p.add("L11", fmt::format("[model] heads = {} is not divisible by tp = {}.", c.model.heads, tp),
          "choose tp dividing heads.");
  if (c.model.kv_heads > 0 && c.model.kv_heads % tp != 0)
    p.add("L11", fmt::format("[model] kv_heads = {} is not divisible by tp = {}.", c.model.kv_heads, tp),
          "choose tp dividing kv_heads, or raise kv_heads.");
  pipeline_split_rules(L, pp, v, c.parallel.pipeline_layers, p);
  const int64_t att = int64_t(tp) * cp * pp;
  const bool dp_known = world_known && s.world >= 1 && s.world % att == 0;
  const int dp = dp_known ? int(s.world / att) : 1;
  const int B = c.train.micro_batch;
  if (dp_known && c.train.global_batch > 0 && B > 0 && c.train.global_batch % (B * dp) != 0)
    p.add("L13",
          fmt::format("[train] global_batch = {} is not divisible by micro_batch·dp = {}·{} = {}.",
                      c.train.global_batch, B, dp, B * dp),
          fmt::format("use a global_batch that is a multiple of {} (e.g. {}), or change micro_batch.", B * dp,
                      std::max(1, c.train.global_batch / (B * dp)) * B * dp));
  // L14 with the trainer's micro-batch group size g = pp.
  const bool m_known = c.train.global_batch == 0 || (dp_known && B > 0);
  if (m_known) {
    const int M = c.micro_batches_per_replica(dp);
    interleave_group_rule(pp, v, M, pp,
                          fmt::format("[train] micro_batches = {}, or global_batch / (micro_batch·dp)",
                                      c.train.micro_batches),
                          p);
  }
}

// Rule order L1..L14, whatever order the rule functions ran in.
Problems sorted(const Problems& in) {
  std::vector<RuleViolation> items = in.items();
  std::stable_sort(items.begin(), items.end(), [](const RuleViolation& a, const RuleViolation& b) {
    return std::atoi(a.id.c_str() + 1) < std::atoi(b.id.c_str() + 1);
  });
  Problems out;
  for (RuleViolation& v : items) out.add(v.id, std::move(v.what), std::move(v.fix));
  return out;
}

}  // namespace

Problems layout_problems(const LayoutSpec& spec, const Config* model) {
  Problems p;
  size_and_order_rules(spec, p);
  world_rules(spec, p);
  if (model) model_rules(spec, *model, /*world_known=*/true, p);
  return sorted(p);
}

Problems layout_problems_without_world(const Config& c) {
  const LayoutSpec spec = LayoutSpec::from_config(c, 0);
  Problems p;
  size_and_order_rules(spec, p);
  model_rules(spec, c, /*world_known=*/false, p);
  return sorted(p);
}

std::vector<std::string> layout_errors(const LayoutSpec& spec, const Config* model) {
  return layout_problems(spec, model).messages();
}

void validate_layout(const LayoutSpec& spec, const Config* model) {
  layout_problems(spec, model).raise("layout errors");
}

}  // namespace foldmoe
