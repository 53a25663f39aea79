// The parallel layout and its rules L1–L14 (docs/rules.md), written once: `foldmoe topology`,
// `foldmoe train` (config validation before any process group exists, then the layout check with
// the world size) and the tests all use these functions.
//  - always: L1 (sizes >= 1), L2 (order string);
//  - with the world size: L3 (world vs tp·cp·pp), L4 (world vs etp·ep·pp), L5 (pipeline groups of
//    both grids identical), L13 (global batch vs micro_batch·dp);
//  - with a model config: L6 (ep | num_experts), L7 (SP with TP and MoE), L8, L9 (sequence length
//    vs cp/tp), L10 (FFN widths vs tp/etp), L11 (heads vs tp), L12 (pipeline split), L14
//    (interleaved micro-batches, group size g = pp; needs the world size when global_batch > 0).
// The model-dependent rules use the sizes of the LayoutSpec (not of config.parallel), except
// sequence_parallel, which comes from the config.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "config/problems.h"

namespace foldmoe {

struct Config;

// The five order-string tokens.
inline constexpr std::array<std::string_view, 5> kOrderTokens = {"tp", "cp", "ep", "dp", "pp"};
// Token indices into kOrderTokens.
enum OrderToken : int { kTP = 0, kCP = 1, kEP = 2, kDP = 3, kPP = 4 };

// Parses an order string such as "tp-cp-ep-dp-pp" into token indices (order_tokens[i] = the token
// at position i). Returns "" on success, or what is wrong ("unknown token \"x\"", ...).
std::string parse_order(std::string_view order, std::array<int, 5>& order_tokens);

// A layout as the user gives it; etp = 0 means etp = tp (L1).
struct LayoutSpec {
  int world = 1;
  int tp = 1, cp = 1, pp = 1, ep = 1, etp = 0;
  std::string order = "tp-cp-ep-dp-pp";
  int vpp = 1;  // virtual pipeline chunks, used only by the model-dependent rules L12/L14

  // [parallel] of a config with the given world size.
  static LayoutSpec from_config(const Config& c, int world);
};

// L12, first part: an interleaved schedule (vpp > 1) needs pp >= 2. False (and reported) when not.
bool interleaving_has_stages(int pp, int vpp, Problems& p);
// L14: the interleaved schedule's micro-batch group size g must satisfy pp <= g <= M and
// (M mod g = 0 or M mod g >= pp), M = micro-batches per replica (m_source says where M came from).
// Nothing to check when vpp = 1 or pp < 2.
void interleave_group_rule(int pp, int vpp, int micro_batches, int group, std::string_view m_source, Problems& p);
// Rule L12 for a pipeline split of `layers` over pp·vpp virtual stages (`counts` = the explicit
// [parallel] pipeline_layers, empty = even split).
void pipeline_split_rules(int layers, int pp, int vpp, const std::vector<int>& counts, Problems& p);

// Every violation for a known world size, in rule order.
Problems layout_problems(const LayoutSpec& spec, const Config* model = nullptr);
// The rules that hold whatever the world size (L1, L2, L6–L12, L14 when global_batch = 0), with
// the sizes of c.parallel: checked by validate() before any process starts.
Problems layout_problems_without_world(const Config& c);

// layout_problems as messages ("layout error <id>: <what>\n  fix: <fix>").
std::vector<std::string> layout_errors(const LayoutSpec& spec, const Config* model = nullptr);
// Throws one UserError listing every violation (a single one verbatim; several under a
// "N layout errors:" heading). Does nothing when the layout is valid.
void validate_layout(const LayoutSpec& spec, const Config* model = nullptr);

}  // namespace foldmoe
