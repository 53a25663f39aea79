// Config parsing, overrides, validation and dump. Every key comes from the table in
// config_fields.cpp; this file only knows how to read and write each FieldType.
#include "model/config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "core/check.h"
#include "model/config_fields.h"
#include "rl/rl_config_bridge.h"

namespace foldmoe {

bool Config::is_moe_layer(int layer) const {
  if (moe.num_experts <= 0 || layer < 0) return false;
  if (moe.layer_freq.size() == 1) {
    const int f = moe.layer_freq[0];
    return f > 0 && layer % f == 0;
  }
  return layer < static_cast<int>(moe.layer_freq.size()) && moe.layer_freq[size_t(layer)] == 1;
}

std::vector<std::pair<std::string, std::string>> Config::pipeline_split_problems() const {
  std::vector<std::pair<std::string, std::string>> out;
  const int L = model.layers, pp = parallel.pp, v = parallel.vpp;
  const std::vector<int>& counts = parallel.pipeline_layers;
  if (pp < 1 || v < 1 || L < 1) return out;  // reported by their own rules
  if (v > 1 && pp < 2) {
    out.emplace_back(fmt::format("[parallel] vpp = {} (interleaved schedule) needs pp >= 2 (got pp = {}).", v, pp),
                     "set vpp = 1, or pp >= 2.");
    return out;
  }
  if (counts.empty()) {
    if (L % (pp * v) != 0)
      out.emplace_back(v > 1 ? fmt::format("[model] layers = {} is not divisible by pp*vpp = {}*{} = {} (even pipeline "
                                           "split).", L, pp, v, pp * v)
                             : fmt::format("[model] layers = {} is not divisible by pp = {} (even pipeline split).", L, pp),
                       fmt::format("choose pp{} dividing layers, or list the layers per stage in [parallel] "
                                   "pipeline_layers.", v > 1 ? "·vpp" : ""));
    return out;
  }
  int sum = 0;
  bool positive = true;
  for (int c : counts) sum += c, positive = positive && c >= 1;
  if (int(counts.size()) != pp * v)
    out.emplace_back(fmt::format("[parallel] pipeline_layers has {} entries but pp*vpp = {}*{} = {} virtual stages.",
                                 counts.size(), pp, v, pp * v),
                     fmt::format("list one layer count per virtual stage ({} entries), or remove the key.", pp * v));
  if (!positive)
    out.emplace_back("[parallel] pipeline_layers has an entry < 1: every virtual stage needs at least one layer.",
                     "give every stage >= 1 layer.");
  if (sum != L)
    out.emplace_back(fmt::format("[parallel] pipeline_layers sums to {} but [model] layers = {}.", sum, L),
                     "make the per-stage counts add up to layers.");
  return out;
}

namespace {

// ---------------------------------------------------------------------------------------------
// Names and suggestions

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// The nearest candidate within a typo's distance, or "".
std::string nearest(std::string_view name, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? std::string(best) : std::string();
}

// " (did you mean `x`?)" or "". Looks in the same section first, then for the same key (or a
// near one) in another section.
std::string suggest_key(std::string_view section, std::string_view key, bool as_flag) {
  std::vector<std::string_view> same;
  for (const ConfigField& f : config_fields())
    if (f.section == section) same.push_back(f.key);
  if (std::string k = nearest(key, same); !k.empty())
    return as_flag ? fmt::format(" (did you mean `--{}.{}`?)", section, k)
                   : fmt::format(" (did you mean `{}`?)", k);
  std::vector<std::string> qualified;
  std::vector<std::string_view> keys;
  for (const ConfigField& f : config_fields()) keys.push_back(f.key);
  if (std::string k = nearest(key, keys); !k.empty()) {
    for (const ConfigField& f : config_fields())
      if (f.key == k)
        return as_flag ? fmt::format(" (did you mean `--{}.{}`?)", f.section, f.key)
                       : fmt::format(" (did you mean `[{}] {}`?)", f.section, f.key);
  }
  return "";
}

std::string suggest_section(std::string_view section) {
  const std::string s = nearest(section, config_sections());
  if (!s.empty()) return fmt::format(" (did you mean `[{}]`?)", s);
  std::string all;
  for (std::string_view x : config_sections()) all += fmt::format("{}[{}]", all.empty() ? "" : " ", x);
  return fmt::format(" (sections: {})", all);
}

std::string clip(std::string s) {
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// ---------------------------------------------------------------------------------------------
// TOML -> field

std::string describe(const toml::node& n) {
  std::ostringstream text;
  const char* kind = "value";
  switch (n.type()) {
    case toml::node_type::string: kind = "string"; break;
    case toml::node_type::integer: kind = "integer"; break;
    case toml::node_type::floating_point: kind = "float"; break;
    case toml::node_type::boolean: kind = "bool"; break;
    case toml::node_type::array: kind = "array"; break;
    case toml::node_type::table: kind = "table"; break;
    default: kind = "date/time"; break;
  }
  if (n.is_table()) return "a table";
  if (n.is_string()) text << '"' << *n.value<std::string>() << '"';
  else if (n.is_array()) text << *n.as_array();
  else if (n.is_integer()) text << *n.value<int64_t>();
  else if (n.is_floating_point()) text << *n.value<double>();
  else if (n.is_boolean()) text << (*n.value<bool>() ? "true" : "false");
  else text << "?";
  return fmt::format("{} {}", kind, clip(text.str()));
}

struct TomlReader {
  const std::string& where;  // "config <file>"
  const ConfigField& f;

  [[noreturn]] void type_error(const toml::node& n, std::string_view expected,
                               std::string_view suffix = "") const {
    user_error("{}: [{}] {}{} expects {}, got {}", where, f.section, f.key, suffix, expected,
               describe(n));
  }

  int64_t get_int64(const toml::node& n, std::string_view suffix = "") const {
    if (!n.is_integer()) type_error(n, "an integer", suffix);
    return *n.value<int64_t>();
  }
  int get_int(const toml::node& n, std::string_view suffix = "") const {
    const int64_t v = get_int64(n, suffix);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      user_error("{}: [{}] {}{} = {} is out of the 32-bit integer range", where, f.section, f.key,
                 suffix, v);
    return static_cast<int>(v);
  }
  double get_double(const toml::node& n, std::string_view suffix = "") const {
    if (n.is_integer()) return static_cast<double>(*n.value<int64_t>());
    if (!n.is_floating_point()) type_error(n, "a float", suffix);
    return *n.value<double>();
  }
  std::string get_string(const toml::node& n, std::string_view suffix = "") const {
    if (!n.is_string()) type_error(n, "a string", suffix);
    return *n.value<std::string>();
  }
  bool is_none(const toml::node& n) const { return n.is_string() && *n.value<std::string>() == "none"; }

  template <typename T, typename Get>
  std::vector<T> get_list(const toml::node& n, std::string_view expected, Get get) const {
    std::vector<T> out;
    if (const toml::array* a = n.as_array()) {
      for (size_t i = 0; i < a->size(); ++i) out.push_back(get((*a)[i], fmt::format("[{}]", i)));
      return out;
    }
    if (f.scalar_as_list && !n.is_table()) {
      try {
        out.push_back(get(n, ""));
      } catch (const UserError&) {
        type_error(n, expected);
      }
      return out;
    }
    type_error(n, expected);
  }

  void read(const toml::node& n, Config& c) const {
    std::visit(
        [&](auto* p) {
          using T = std::remove_cvref_t<decltype(*p)>;
          if constexpr (std::is_same_v<T, int>) *p = get_int(n);
          else if constexpr (std::is_same_v<T, int64_t>) *p = get_int64(n);
          else if constexpr (std::is_same_v<T, double>) *p = get_double(n);
          else if constexpr (std::is_same_v<T, bool>) {
            if (!n.is_boolean()) type_error(n, "a bool (true or false)");
            *p = *n.value<bool>();
          } else if constexpr (std::is_same_v<T, std::string>) *p = get_string(n);
          else if constexpr (std::is_same_v<T, std::optional<double>>) {
            if (is_none(n)) *p = std::nullopt;
            else if (n.is_integer() || n.is_floating_point()) *p = get_double(n);
            else type_error(n, "a float or \"none\"");
          } else if constexpr (std::is_same_v<T, std::optional<int>>) {
            if (is_none(n)) *p = std::nullopt;
            else if (n.is_integer()) *p = get_int(n);
            else type_error(n, "an integer or \"none\"");
          } else if constexpr (std::is_same_v<T, std::vector<int>>) {
            *p = get_list<int>(n, f.scalar_as_list ? "an integer or an array of integers"
                                                   : "an array of integers",
                               [&](const toml::node& e, std::string_view s) { return get_int(e, s); });
          } else if constexpr (std::is_same_v<T, std::vector<double>>) {
            *p = get_list<double>(n, f.scalar_as_list ? "a float or an array of floats"
                                                      : "an array of floats",
                                  [&](const toml::node& e, std::string_view s) { return get_double(e, s); });
          } else {
            *p = get_list<std::string>(
                n, f.scalar_as_list ? "a string or an array of strings" : "an array of strings",
                [&](const toml::node& e, std::string_view s) { return get_string(e, s); });
          }
        },
        f.ref(c));
  }
};

// ---------------------------------------------------------------------------------------------
// Override text -> field

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string unquote(std::string_view s) {
  s = trim(s);
  if (s.size() >= 2 && ((s.front() == '"' && s.back() == '"') || (s.front() == '\'' && s.back() == '\'')))
    s = s.substr(1, s.size() - 2);
  return std::string(s);
}

struct TextReader {
  const std::string& where;  // "override --moe.topk=x"
  const ConfigField& f;

  [[noreturn]] void type_error(std::string_view text, std::string_view expected) const {
    user_error("{}: [{}] {} expects {}, got `{}`", where, f.section, f.key, expected, clip(std::string(text)));
  }
  int64_t get_int64(std::string_view t, std::string_view expected) const {
    t = trim(t);
    int64_t v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) type_error(t, expected);
    return v;
  }
  int get_int(std::string_view t, std::string_view expected = "an integer") const {
    const int64_t v = get_int64(t, expected);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      user_error("{}: [{}] {} = {} is out of the 32-bit integer range", where, f.section, f.key, v);
    return static_cast<int>(v);
  }
  double get_double(std::string_view t, std::string_view expected = "a float") const {
    t = trim(t);
    if (!t.empty() && t.front() == '+') t.remove_prefix(1);
    double v = 0;
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || end != t.data() + t.size()) type_error(t, expected);
    return v;
  }
  std::vector<std::string> split_list(std::string_view t) const {
    t = trim(t);
    if (!t.empty() && t.front() == '[') {
      if (t.back() != ']') type_error(t, "a list written [a,b] or a,b");
      t = trim(t.substr(1, t.size() - 2));
    }
    std::vector<std::string> items;
    if (t.empty()) return items;
    size_t start = 0;
    while (true) {
      const size_t comma = t.find(',', start);
      items.emplace_back(trim(t.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return items;
  }

  void read(std::string_view text, Config& c) const {
    std::visit(
        [&](auto* p) {
          using T = std::remove_cvref_t<decltype(*p)>;
          if constexpr (std::is_same_v<T, int>) *p = get_int(text);
          else if constexpr (std::is_same_v<T, int64_t>) *p = get_int64(text, "an integer");
          else if constexpr (std::is_same_v<T, double>) *p = get_double(text);
          else if constexpr (std::is_same_v<T, bool>) {
            const std::string_view t = trim(text);
            if (t == "true" || t == "1") *p = true;
            else if (t == "false" || t == "0") *p = false;
            else type_error(text, "a bool (true or false)");
          } else if constexpr (std::is_same_v<T, std::string>) *p = unquote(text);
          else if constexpr (std::is_same_v<T, std::optional<double>>) {
            if (trim(text) == "none") *p = std::nullopt;
            else *p = get_double(text, "a float or none");
          } else if constexpr (std::is_same_v<T, std::optional<int>>) {
            if (trim(text) == "none") *p = std::nullopt;
            else *p = get_int(text, "an integer or none");
          } else if constexpr (std::is_same_v<T, std::vector<int>>) {
            p->clear();
            for (const std::string& s : split_list(text)) p->push_back(get_int(s, "a list of integers"));
          } else if constexpr (std::is_same_v<T, std::vector<double>>) {
            p->clear();
            for (const std::string& s : split_list(text)) p->push_back(get_double(s, "a list of floats"));
          } else {
            p->clear();
            for (const std::string& s : split_list(text)) p->push_back(unquote(s));
          }
        },
        f.ref(c));
  }
};

// ---------------------------------------------------------------------------------------------
// Validation

class Problems {
 public:
  // id: "M1", "L2", ... or "" for rules without a spec id.
  void add(std::string_view id, std::string what, std::string fix) {
    const bool layout = !id.empty() && id[0] == 'L';
    items_.push_back(fmt::format("{} error{}{}: {}\n  fix: {}", layout ? "layout" : "config",
                                 id.empty() ? "" : " ", id, what, fix));
  }
  void raise() const {
    if (items_.empty()) return;
    if (items_.size() == 1) throw UserError(items_[0]);
    std::string msg = fmt::format("{} configuration errors:", items_.size());
    for (const std::string& s : items_) msg += "\n" + s;
    throw UserError(msg);
  }

 private:
  std::vector<std::string> items_;
};

bool one_of(const std::string& v, std::initializer_list<std::string_view> allowed) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

std::string join(std::initializer_list<std::string_view> xs, std::string_view sep = " | ") {
  std::string out;
  for (std::string_view x : xs) out += fmt::format("{}{}", out.empty() ? "" : sep, x);
  return out;
}

template <typename T>
std::string list_text(const std::vector<T>& v) {
  return fmt::format("[{}]", fmt::join(v, ", "));
}

void check_choice(Problems& p, std::string_view key, const std::string& v,
                  std::initializer_list<std::string_view> allowed, std::string_view id = "") {
  if (!one_of(v, allowed))
    p.add(id, fmt::format("{} = \"{}\" is not one of {}.", key, v, join(allowed)),
          fmt::format("set {} to one of {}.", key, join(allowed)));
}

void validate_model(const Config& c, Problems& p) {
  const ModelConfig& m = c.model;
  auto positive = [&](std::string_view key, int v) {
    if (v <= 0) p.add("", fmt::format("[model] {} = {} must be > 0.", key, v), fmt::format("set [model] {} to a positive integer.", key));
  };
  positive("layers", m.layers);
  positive("hidden", m.hidden);
  positive("heads", m.heads);
  positive("kv_heads", m.kv_heads);
  positive("ffn", m.ffn);
  if (m.vocab < 0)
    p.add("", fmt::format("[model] vocab = {} must be >= 0.", m.vocab), "set [model] vocab = 0 to use the data's vocabulary size.");
  if (m.head_dim < 0)
    p.add("", fmt::format("[model] head_dim = {} must be >= 0.", m.head_dim), "set [model] head_dim = 0 to use hidden / heads.");
  if (m.heads > 0 && m.kv_heads > 0 && m.heads % m.kv_heads != 0)
    p.add("", fmt::format("[model] heads = {} is not divisible by kv_heads = {} (each KV head serves heads / kv_heads query heads).", m.heads, m.kv_heads),
          fmt::format("set kv_heads to a divisor of {} (e.g. {} or 1).", m.heads, m.heads));
  if (m.head_dim == 0 && m.heads > 0 && m.hidden > 0 && m.hidden % m.heads != 0)
    p.add("", fmt::format("[model] hidden = {} is not divisible by heads = {} and head_dim is not set.", m.hidden, m.heads),
          "choose heads dividing hidden, or set [model] head_dim explicitly.");
  if (m.heads > 0 && m.head_dim >= 0 && (m.head_dim > 0 || m.hidden % m.heads == 0)) {
    const int hd = c.head_dim();
    if (hd <= 0 || hd % 2 != 0)
      p.add("", fmt::format("head dimension {} ([model] head_dim = {}, hidden = {}, heads = {}) must be even and > 0 for RoPE.", hd, m.head_dim, m.hidden, m.heads),
            "set [model] head_dim to an even number, or pick hidden / heads even.");
  }
  if (!(m.rope_theta > 0))
    p.add("", fmt::format("[model] rope_theta = {} must be > 0.", m.rope_theta), "use the default rope_theta = 10000.0.");
  if (!(m.norm_eps > 0))
    p.add("", fmt::format("[model] norm_eps = {} must be > 0.", m.norm_eps), "use e.g. norm_eps = 1e-5.");
  if (!(m.init_std > 0))
    p.add("", fmt::format("[model] init_std = {} must be > 0.", m.init_std), "use e.g. init_std = 0.02.");
}

void validate_moe(const Config& c, Problems& p) {
  const MoEConfig& e = c.moe;
  const int E = e.num_experts, k = e.topk, L = c.model.layers;
  if (E < 0) {
    p.add("", fmt::format("[moe] num_experts = {} must be >= 0.", E), "set num_experts = 0 for a dense model or to the number of experts.");
    return;
  }
  // layer_freq (L15) is checked for dense models too: the key is then unused but must still parse.
  if (e.layer_freq.empty()) {
    p.add("L15", "[moe] layer_freq = [] is empty.", "set layer_freq = 1 (every layer MoE), an integer f, or a list of L entries 0/1.");
  } else if (e.layer_freq.size() == 1) {
    if (e.layer_freq[0] < 1)
      p.add("L15", fmt::format("[moe] layer_freq = {} must be >= 1 (layer i is MoE iff i mod layer_freq == 0).", e.layer_freq[0]),
            "set layer_freq = 1 for all MoE layers, or num_experts = 0 for a dense model.");
  } else {
    if (L > 0 && e.layer_freq.size() != size_t(L))
      p.add("L15", fmt::format("[moe] layer_freq has {} entries but [model] layers = {}.", e.layer_freq.size(), L),
            fmt::format("give exactly {} entries of 0/1, or a single integer frequency.", L));
    for (int v : e.layer_freq)
      if (v != 0 && v != 1) {
        p.add("L15", fmt::format("[moe] layer_freq = {} has entry {}; a list must hold only 0 and 1.", list_text(e.layer_freq), v),
              "use 1 for an MoE layer and 0 for a dense layer, or a single integer frequency.");
        break;
      }
  }
  if (e.ffn_hidden_size < 0)
    p.add("", fmt::format("[moe] ffn_hidden_size = {} must be >= 0.", e.ffn_hidden_size), "set ffn_hidden_size = 0 to use [model] ffn.");
  if (e.shared_expert_ffn_hidden_size < 0)
    p.add("", fmt::format("[moe] shared_expert_ffn_hidden_size = {} must be >= 0.", e.shared_expert_ffn_hidden_size), "set it to 0 for no shared expert.");
  if (E == 0) return;  // dense model: the remaining [moe] keys are unused

  // M1
  if (k < 1 || k > E)
    p.add("M1", fmt::format("[moe] topk = {} must satisfy 1 <= topk <= num_experts = {}.", k, E),
          fmt::format("set topk between 1 and {}, or raise num_experts.", E));
  check_choice(p, "[moe] score_function", e.score_function, {"softmax", "sigmoid"});
  check_choice(p, "[moe] dispatcher", e.dispatcher, {"alltoall", "allgather"});
  if (e.topk_scaling_factor && !(*e.topk_scaling_factor > 0))
    p.add("", fmt::format("[moe] topk_scaling_factor = {} must be > 0.", *e.topk_scaling_factor), "remove the key (factor 1) or set a positive factor.");
  // M3 group-limited routing
  if (e.num_groups.has_value() != e.group_topk.has_value()) {
    p.add("M3", fmt::format("group routing needs both [moe] num_groups and group_topk; got num_groups = {}, group_topk = {}.",
                            e.num_groups ? fmt::format("{}", *e.num_groups) : "none", e.group_topk ? fmt::format("{}", *e.group_topk) : "none"),
          "set both keys (e.g. num_groups = ep, group_topk = 1) or neither.");
  } else if (e.num_groups) {
    const int G = *e.num_groups, g = *e.group_topk;
    if (G < 1 || E % G != 0)
      p.add("M3", fmt::format("[moe] num_groups = {} must be >= 1 and divide num_experts = {}.", G, E), "choose num_groups dividing num_experts (e.g. the EP size).");
    else if (g < 1 || g > G)
      p.add("M3", fmt::format("[moe] group_topk = {} must satisfy 1 <= group_topk <= num_groups = {}.", g, G), fmt::format("set group_topk between 1 and {}.", G));
    else if (k < g || k > g * (E / G))
      p.add("M3", fmt::format("[moe] topk = {} must satisfy group_topk = {} <= topk <= group_topk * num_experts / num_groups = {}.", k, g, g * (E / G)),
            "lower group_topk, or change topk / num_groups.");
  }
  // M4
  if (e.enable_expert_bias && e.score_function != "sigmoid")
    p.add("M4", fmt::format("[moe] enable_expert_bias = true requires score_function = \"sigmoid\", got \"{}\".", e.score_function),
          "set score_function = \"sigmoid\" or enable_expert_bias = false.");
  if (!(e.bias_update_rate >= 0))
    p.add("", fmt::format("[moe] bias_update_rate = {} must be >= 0.", e.bias_update_rate), "use e.g. bias_update_rate = 1e-3.");
  if (e.input_jitter_eps && !(*e.input_jitter_eps >= 0 && *e.input_jitter_eps < 1))
    p.add("", fmt::format("[moe] input_jitter_eps = {} must satisfy 0 <= eps < 1.", *e.input_jitter_eps), "remove the key or use a small value such as 0.01.");
  if (e.z_loss_coeff && !(*e.z_loss_coeff >= 0))
    p.add("", fmt::format("[moe] z_loss_coeff = {} must be >= 0.", *e.z_loss_coeff), "remove the key or set a non-negative coefficient such as 1e-3.");
  // M8 load balancing lists
  const auto& types = e.load_balancing_type;
  const auto& coeffs = e.aux_loss_coeff;
  if (types.size() != coeffs.size())
    p.add("M8", fmt::format("[moe] load_balancing_type has {} entries {} but aux_loss_coeff has {} {}.", types.size(), list_text(types), coeffs.size(), list_text(coeffs)),
          "give one coefficient per load-balancing type.");
  std::set<std::string> seen;
  for (const std::string& t : types) {
    if (!one_of(t, {"aux_loss", "seq_aux_loss", "global_aux_loss", "sinkhorn", "none"}))
      p.add("M8", fmt::format("[moe] load_balancing_type entry \"{}\" is unknown.", t), "use aux_loss, seq_aux_loss, global_aux_loss, sinkhorn or none.");
    if (!seen.insert(t).second)
      p.add("M8", fmt::format("[moe] load_balancing_type = {} lists \"{}\" twice.", list_text(types), t), "list each type once.");
  }
  if (seen.count("none") && types.size() > 1)
    p.add("M8", fmt::format("[moe] load_balancing_type = {} combines \"none\" with other types.", list_text(types)), "use [\"none\"] alone, or drop \"none\".");
  for (double a : coeffs)
    if (!(a >= 0)) {
      p.add("M8", fmt::format("[moe] aux_loss_coeff = {} has a negative entry {}.", list_text(coeffs), a), "use coefficients >= 0.");
      break;
    }
  const bool capacity = e.capacity_factor.has_value() && *e.capacity_factor >= 0;
  // M5
  if (seen.count("sinkhorn")) {
    if (std::any_of(coeffs.begin(), coeffs.end(), [](double a) { return a != 0; }) || capacity)
      p.add("M5", fmt::format("[moe] load_balancing_type \"sinkhorn\" requires every aux_loss_coeff = 0 (got {}) and no capacity_factor (got {}).",
                              list_text(coeffs), e.capacity_factor ? fmt::format("{}", *e.capacity_factor) : "none"),
            "set aux_loss_coeff to zeros and remove capacity_factor, or choose another balancing type.");
  }
  // M6, M7
  if (e.pad_to_capacity && !capacity)
    p.add("M6", "[moe] pad_to_capacity = true requires a capacity_factor >= 0 (dropless runs have no capacity to pad to).",
          "set capacity_factor (e.g. 1.0) or pad_to_capacity = false.");
  check_choice(p, "[moe] drop_policy", e.drop_policy, {"probs", "position"}, "M7");
  // M11 capacity_partition
  if (!e.capacity_partition.empty()) {
    const auto& cpp = e.capacity_partition;
    if (cpp.size() != 2 || cpp[0] < 1 || cpp[1] < 1) {
      p.add("M11", fmt::format("[moe] capacity_partition = {} must be [tp, cp] with both >= 1.", list_text(cpp)), "write e.g. capacity_partition = [2, 2], or remove the key.");
    } else {
      const int ptp = cpp[0], pcp = cpp[1], S = c.train.seq_len;
      if (c.parallel.tp != 1 || c.parallel.cp != 1)
        p.add("M11", fmt::format("[moe] capacity_partition = {} is a single-process test option but the run has tp = {}, cp = {}.", list_text(cpp), c.parallel.tp, c.parallel.cp),
              "remove capacity_partition (a TP x CP run partitions itself) or run with tp = cp = 1.");
      if (pcp > 1 && S % (2 * pcp) != 0)
        p.add("M11", fmt::format("[moe] capacity_partition cp = {}: seq_len = {} is not divisible by 2*cp = {}.", pcp, S, 2 * pcp), fmt::format("use a seq_len that is a multiple of {}.", 2 * pcp));
      else if ((S / pcp) % ptp != 0)
        p.add("M11", fmt::format("[moe] capacity_partition = {}: seq_len / cp = {} is not divisible by tp = {}.", list_text(cpp), S / pcp, ptp), fmt::format("use a seq_len that is a multiple of {}.", ptp * pcp * (pcp > 1 ? 2 : 1)));
    }
  }
  if (e.shared_expert_gate && e.shared_expert_ffn_hidden_size == 0)
    p.add("", "[moe] shared_expert_gate = true but shared_expert_ffn_hidden_size = 0 (no shared expert).", "set shared_expert_ffn_hidden_size > 0 or shared_expert_gate = false.");
  // M12 (expert linear biases) has no key: foldmoe experts are bias-free by construction.
}

void validate_parallel(const Config& c, Problems& p) {
  const ParallelConfig& q = c.parallel;
  const auto ge1 = [&](std::string_view key, int v) {
    if (v < 1) p.add("L1", fmt::format("[parallel] {} = {} must be an integer >= 1.", key, v), fmt::format("set [parallel] {} = 1 to disable this dimension.", key));
  };
  ge1("tp", q.tp);
  ge1("cp", q.cp);
  ge1("pp", q.pp);
  ge1("vpp", q.vpp);
  ge1("ep", q.ep);
  if (q.etp < 0) p.add("L1", fmt::format("[parallel] etp = {} must be >= 1, or 0 for etp = tp.", q.etp), "set [parallel] etp = 0 (same as tp) or a positive size.");
  // L2 order string
  {
    static constexpr std::string_view kTokens[] = {"tp", "cp", "ep", "dp", "pp"};
    std::vector<std::string> parts;
    std::string_view o = q.order;
    size_t start = 0;
    while (true) {
      const size_t dash = o.find('-', start);
      parts.emplace_back(o.substr(start, dash == std::string_view::npos ? std::string_view::npos : dash - start));
      if (dash == std::string_view::npos) break;
      start = dash + 1;
    }
    std::string problem;
    std::set<std::string> seen;
    for (const std::string& t : parts) {
      if (std::find(std::begin(kTokens), std::end(kTokens), t) == std::end(kTokens)) {
        problem = fmt::format("unknown token \"{}\"", t);
        break;
      }
      if (!seen.insert(t).second) {
        problem = fmt::format("duplicate token \"{}\"", t);
        break;
      }
    }
    if (problem.empty())
      for (std::string_view t : kTokens)
        if (!seen.count(std::string(t))) {
          problem = fmt::format("missing token \"{}\"", t);
          break;
        }
    if (!problem.empty())
      p.add("L2", fmt::format("[parallel] order = \"{}\" is not a permutation of tp, cp, ep, dp, pp joined by '-': {}.", q.order, problem),
            "use e.g. order = \"tp-cp-ep-dp-pp\" (every token exactly once).");
  }
  if (q.tp < 1 || q.cp < 1 || q.pp < 1 || q.vpp < 1 || q.ep < 1 || q.etp < 0) return;

  const int tp = q.tp, cp = q.cp, pp = q.pp, v = q.vpp, ep = q.ep, etp = q.etp > 0 ? q.etp : q.tp;
  const int L = c.model.layers, S = c.train.seq_len, E = c.moe.num_experts;
  bool has_moe = false, has_dense = false;
  for (int i = 0; i < L; ++i) (c.is_moe_layer(i) ? has_moe : has_dense) = true;
  // L6 = M2
  if (has_moe && E > 0 && E % ep != 0)
    p.add("M2", fmt::format("[parallel] ep = {} does not divide [moe] num_experts = {}.", ep, E), fmt::format("choose ep dividing {} (e.g. ep = 1), or change num_experts.", E));
  // L7 = M10
  if (has_moe && tp > 1 && !q.sequence_parallel)
    p.add("M10", fmt::format("[parallel] tp = {} with MoE layers requires sequence_parallel = true (got false).", tp), "set [parallel] sequence_parallel = true, or tp = 1.");
  // L8, L9
  if (cp > 1 && S % (2 * cp) != 0)
    p.add("L8", fmt::format("[train] seq_len = {} is not divisible by 2*cp = {} (context parallelism cuts each sequence into 2*cp chunks).", S, 2 * cp),
          fmt::format("use a seq_len that is a multiple of {}, or change cp.", 2 * cp));
  else if (tp > 1 && q.sequence_parallel && S > 0 && (S / cp) % tp != 0)
    p.add("L9", fmt::format("[train] seq_len / cp = {} / {} = {} is not divisible by tp = {} (sequence parallelism).", S, cp, S / cp, tp),
          fmt::format("use a seq_len that is a multiple of {}, or change tp.", tp * cp * (cp > 1 ? 2 : 1)));
  // L10 = M9 for experts
  if (has_moe && c.moe_ffn() > 0 && c.moe_ffn() % etp != 0)
    p.add("M9", fmt::format("expert width F_moe = {} ([moe] ffn_hidden_size, 0 = model.ffn) is not divisible by etp = {}.", c.moe_ffn(), etp),
          "choose etp dividing the expert width, or change [moe] ffn_hidden_size.");
  if (has_dense && c.model.ffn > 0 && c.model.ffn % tp != 0)
    p.add("L10", fmt::format("[model] ffn = {} (dense MLP layers) is not divisible by tp = {}.", c.model.ffn, tp), "choose tp dividing ffn, or change ffn.");
  if (has_moe && c.moe.shared_expert_ffn_hidden_size > 0 && c.moe.shared_expert_ffn_hidden_size % tp != 0)
    p.add("L10", fmt::format("[moe] shared_expert_ffn_hidden_size = {} is not divisible by tp = {}.", c.moe.shared_expert_ffn_hidden_size, tp), "choose tp dividing the shared expert width.");
  // L11
  if (c.model.heads > 0 && c.model.heads % tp != 0)
    p.add("L11", fmt::format("[model] heads = {} is not divisible by tp = {}.", c.model.heads, tp), "choose tp dividing heads.");
  if (c.model.kv_heads > 0 && c.model.kv_heads % tp != 0)
    p.add("L11", fmt::format("[model] kv_heads = {} is not divisible by tp = {}.", c.model.kv_heads, tp), "choose tp dividing kv_heads, or raise kv_heads.");
  // L12
  for (const auto& [what, fix] : c.pipeline_split_problems()) p.add("L12", what, fix);
  if (v > 1 && pp >= 2) {
    // L14 with the default micro-batch group size g = pp
    // With [train] global_batch, M depends on DP: the layout check (topology) applies the rule then.
    const int M = c.train.micro_batches;
    if (c.train.global_batch == 0 && pp >= 2 && M >= 1 && (M < pp || M % pp != 0))
      p.add("L14", fmt::format("interleaved pipeline (vpp = {}): [train] micro_batches = {} must be a multiple of pp = {}.", v, M, pp),
            fmt::format("set micro_batches to a multiple of {}, or vpp = 1.", pp));
  }
}

void validate_rest(const Config& c, Problems& p) {
  const TrainConfig& t = c.train;
  if (t.steps < 0) p.add("", fmt::format("[train] steps = {} must be >= 0.", t.steps), "set a non-negative number of steps.");
  if (t.micro_batch < 1) p.add("", fmt::format("[train] micro_batch = {} must be >= 1.", t.micro_batch), "set micro_batch >= 1.");
  if (c.parallel.bucket_size < 1)
    p.add("", fmt::format("[parallel] bucket_size = {} must be >= 1.", c.parallel.bucket_size), "set bucket_size = 40000000 (the default).");
  if (t.micro_batches < 1) p.add("", fmt::format("[train] micro_batches = {} must be >= 1.", t.micro_batches), "set micro_batches >= 1.");
  if (t.global_batch < 0) p.add("", fmt::format("[train] global_batch = {} must be >= 0.", t.global_batch), "set global_batch = 0 (micro_batch x micro_batches x DP) or a positive multiple of micro_batch.");
  if (t.seq_len < 2) p.add("", fmt::format("[train] seq_len = {} must be >= 2 (next-token targets need two positions).", t.seq_len), "set seq_len >= 2.");
  if (t.run_dir.empty()) p.add("", "[train] run_dir is empty.", "set run_dir, e.g. \"runs/default\".");
  check_choice(p, "[train] recompute", t.recompute, {"none", "moe", "full"});
  check_choice(p, "[parallel] cp_comm_type", c.parallel.cp_comm_type, {"p2p", "all_gather"});

  const OptimConfig& o = c.optim;
  if (!(o.lr > 0)) p.add("", fmt::format("[optim] lr = {} must be > 0.", o.lr), "use e.g. lr = 3e-3.");
  if (!(o.min_lr >= 0 && (!(o.lr > 0) || o.min_lr <= o.lr)))
    p.add("", fmt::format("[optim] min_lr = {} must satisfy 0 <= min_lr <= lr = {}.", o.min_lr, o.lr), "use e.g. min_lr = lr / 10.");
  if (o.warmup_steps < 0) p.add("", fmt::format("[optim] warmup_steps = {} must be >= 0.", o.warmup_steps), "set warmup_steps = 0 for no warmup.");
  check_choice(p, "[optim] schedule", o.schedule, {"cosine", "constant"});
  if (!(o.weight_decay >= 0)) p.add("", fmt::format("[optim] weight_decay = {} must be >= 0.", o.weight_decay), "use e.g. weight_decay = 0.1.");
  if (!(o.beta1 >= 0 && o.beta1 < 1)) p.add("", fmt::format("[optim] beta1 = {} must satisfy 0 <= beta1 < 1.", o.beta1), "use e.g. beta1 = 0.9.");
  if (!(o.beta2 >= 0 && o.beta2 < 1)) p.add("", fmt::format("[optim] beta2 = {} must satisfy 0 <= beta2 < 1.", o.beta2), "use e.g. beta2 = 0.95.");
  if (!(o.eps > 0)) p.add("", fmt::format("[optim] eps = {} must be > 0.", o.eps), "use e.g. eps = 1e-8.");
  if (!(o.grad_clip >= 0)) p.add("", fmt::format("[optim] grad_clip = {} must be >= 0.", o.grad_clip), "set grad_clip = 0 to disable clipping, or a positive norm.");

  const DataConfig& d = c.data;
  check_choice(p, "[data] source", d.source, {"synthetic"});
  if (d.tasks.empty()) p.add("", "[data] tasks is empty.", "list at least one of add, reverse, sort, lookup, chain.");
  std::set<std::string> seen;
  for (const std::string& task : d.tasks) {
    if (!one_of(task, {"add", "reverse", "sort", "lookup", "chain"}))
      p.add("", fmt::format("[data] tasks entry \"{}\" is not a synthetic task.", task), "use tasks from add, reverse, sort, lookup, chain.");
    else if (!seen.insert(task).second)
      p.add("", fmt::format("[data] tasks = {} lists \"{}\" twice.", list_text(d.tasks), task), "list each task once.");
  }
  if (d.eval_samples < 0) p.add("", fmt::format("[data] eval_samples = {} must be >= 0.", d.eval_samples), "set eval_samples >= 0.");
  if (c.checkpoint.interval < 0)
    p.add("", fmt::format("[checkpoint] interval = {} must be >= 0.", c.checkpoint.interval), "set interval = 0 to save only at the end.");
  if (c.log.interval < 1) p.add("", fmt::format("[log] interval = {} must be >= 1.", c.log.interval), "set [log] interval = 1 to print every step.");
  check_choice(p, "[log] progress", c.log.progress, {"auto", "on", "off"});
}

}  // namespace

Config config_from_toml(const std::string& text, const std::string& source) {
  const std::string where = "config " + source;
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    user_error("{}:{}:{}: TOML syntax error: {}", source, err.source().begin.line,
               err.source().begin.column, err.description());
  }
  Config c;
  for (const auto& [skey, snode] : root) {
    const std::string_view section = skey.str();
    const std::vector<std::string_view> sections = config_sections();
    if (std::find(sections.begin(), sections.end(), section) == sections.end()) {
      if (!snode.is_table())
        user_error("{}: key `{}` is outside any section; every key belongs to a section such as [model]{}", where,
                   section, suggest_key("", section, false));
      user_error("{}: unknown section [{}]{}", where, section, suggest_section(section));
    }
    const toml::table* tbl = snode.as_table();
    if (!tbl) user_error("{}: `{}` must be a section [{}], got {}", where, section, section, describe(snode));
    // Dotted keys (`hapo.ats.tau = 0.05` or a [rl.hapo.ats] sub-table) name fields whose key
    // contains dots; a sub-table that is no field's prefix is an unknown key as before.
    std::vector<std::pair<std::string, const toml::node*>> entries;
    auto collect = [&](auto&& self, const toml::table& t, const std::string& prefix) -> void {
      for (const auto& [kkey, node] : t) {
        const std::string key = prefix + std::string(kkey.str());
        if (node.is_table() && !find_config_field(section, key)) {
          bool is_prefix = false;
          for (const ConfigField& f : config_fields())
            is_prefix = is_prefix || (f.section == section && f.key.starts_with(key + "."));
          if (is_prefix) {
            self(self, *node.as_table(), key + ".");
            continue;
          }
        }
        entries.emplace_back(key, &node);
      }
    };
    collect(collect, *tbl, "");
    // rl.preset resets the fields it controls, so it is applied before every other [rl] key.
    std::stable_partition(entries.begin(), entries.end(), [](const auto& e) { return e.first == "preset"; });
    for (const auto& [key, node] : entries) {
      const ConfigField* f = find_config_field(section, key);
      if (!f) user_error("{}: unknown key [{}] {}{}", where, section, key, suggest_key(section, key, false));
      TomlReader{where, *f}.read(*node, c);
      if (section == "rl" && key == "preset") rl::apply_rl_preset_section(c.rl);
    }
  }
  return c;
}

void apply_overrides(Config& c, const std::vector<std::string>& flags) {
  for (const std::string& flag : flags) {
    const std::string where = "override " + flag;
    std::string_view s = flag;
    if (s.starts_with("--")) s.remove_prefix(2);
    const size_t eq = s.find('=');
    const size_t dot = s.substr(0, eq).find('.');
    if (eq == std::string_view::npos || dot == std::string_view::npos)
      user_error("{}: expected --section.key=value (e.g. --moe.topk=2)", where);
    const std::string_view section = s.substr(0, dot), key = s.substr(dot + 1, eq - dot - 1);
    const ConfigField* f = find_config_field(section, key);
    if (!f) {
      const std::vector<std::string_view> sections = config_sections();
      if (std::find(sections.begin(), sections.end(), section) == sections.end())
        user_error("{}: unknown section [{}]{}", where, section, suggest_section(section));
      user_error("{}: unknown key [{}] {}{}", where, section, key, suggest_key(section, key, true));
    }
    TextReader{where, *f}.read(s.substr(eq + 1), c);
    if (section == "rl" && key == "preset") rl::apply_rl_preset_section(c.rl);
  }
}

void validate(const Config& c) {
  Problems p;
  validate_model(c, p);
  validate_moe(c, p);
  validate_parallel(c, p);
  validate_rest(c, p);
  p.raise();
}

std::string config_to_toml(const Config& c) {
  const Config defaults;
  std::string out = "# foldmoe resolved configuration (every key; see `foldmoe --help`)\n";
  std::string_view section;
  for (const ConfigField& f : config_fields()) {
    if (f.section != section) {
      section = f.section;
      out += fmt::format("\n[{}]\n", section);
    }
    const std::string value = field_value_toml(f, c);
    const bool optional = f.type == FieldType::OptDouble || f.type == FieldType::OptInt;
    if (optional && value == "none") {
      if (field_value_toml(f, defaults) == "none")
        out += fmt::format("# {} = (unset)  # {}\n", f.key, f.help);
      else
        out += fmt::format("{} = \"none\"  # {}\n", f.key, f.help);
      continue;
    }
    out += fmt::format("{} = {}  # {}\n", f.key, value, f.help);
  }
  return out;
}

}  // namespace foldmoe
