// TOML text -> Config. Every key comes from the field table; this file only knows how to read
// each FieldType from a TOML node.
#include "config/toml_reader.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>

#include "config/config_fields.h"
#include "config/problems.h"
#include "config/suggest.h"
#include "config/toml_guard.h"
#include "core/check.h"

namespace foldmoe {
namespace {

std::string describe(const toml::node& n) {
  std::ostringstream text;
  const char* kind = "value";
  switch (n.type()) {
    case toml::node_type::string:
      kind = "string";
      break;
    case toml::node_type::integer:
      kind = "integer";
      break;
    case toml::node_type::floating_point:
      kind = "float";
      break;
    case toml::node_type::boolean:
      kind = "bool";
      break;
    case toml::node_type::array:
      kind = "array";
      break;
    case toml::node_type::table:
      kind = "table";
      break;
    default:
      kind = "date/time";
      break;
  }
  if (n.is_table()) return "a table";
  if (n.is_string())
    text << '"' << *n.value<std::string>() << '"';
  else if (n.is_array())
    text << *n.as_array();
  else if (n.is_integer())
    text << *n.value<int64_t>();
  else if (n.is_floating_point())
    text << *n.value<double>();
  else if (n.is_boolean())
    text << (*n.value<bool>() ? "true" : "false");
  else
    text << "?";
  return fmt::format("{} {}", kind, clip_value_text(text.str()));
}

struct TomlReader {
  const std::string& where;  // "config <file>"
  const ConfigField& f;

  [[noreturn]] void type_error(const toml::node& n, std::string_view expected, std::string_view suffix = "") const {
    user_error("{}: [{}] {}{} expects {}, got {}", where, f.section, f.key, suffix, expected, describe(n));
  }

  int64_t get_int64(const toml::node& n, std::string_view suffix = "") const {
    if (!n.is_integer()) type_error(n, "an integer", suffix);
    return *n.value<int64_t>();
  }
  int get_int(const toml::node& n, std::string_view suffix = "") const {
    const int64_t v = get_int64(n, suffix);
    if (v < std::numeric_limits<int>::min() || v > std::numeric_limits<int>::max())
      user_error("{}: [{}] {}{} = {} is out of the 32-bit integer range", where, f.section, f.key, suffix, v);
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
        [&](auto p) {
          using P = decltype(p);
          if constexpr (std::is_same_v<P, EnumRef>) {
            set_enum(p, get_string(n));
          } else if constexpr (std::is_same_v<P, DoublePairRef>) {
            const std::vector<double> v = get_list<double>(
                n, "an array of two floats", [&](const toml::node& e, std::string_view s) { return get_double(e, s); });
            if (v.size() != 2) type_error(n, "an array of two floats");
            *p.first = v[0], *p.second = v[1];
          } else {
            read_value(n, p);
          }
        },
        f.ref(c));
  }

  void set_enum(const EnumRef& r, const std::string& text) const {
    if (!r.codec->parse(text, r.value))
      user_error("{}: [{}] {} = \"{}\" is not one of {}", where, f.section, f.key, clip_value_text(text),
                 r.codec->choices());
  }

  template <typename Ptr>
  void read_value(const toml::node& n, Ptr p) const {
    {
      {
        using T = std::remove_cvref_t<decltype(*p)>;
        if constexpr (std::is_same_v<T, int>)
          *p = get_int(n);
        else if constexpr (std::is_same_v<T, int64_t>)
          *p = get_int64(n);
        else if constexpr (std::is_same_v<T, double>)
          *p = get_double(n);
        else if constexpr (std::is_same_v<T, bool>) {
          if (!n.is_boolean()) type_error(n, "a bool (true or false)");
          *p = *n.value<bool>();
        } else if constexpr (std::is_same_v<T, std::string>)
          *p = get_string(n);
        else if constexpr (std::is_same_v<T, std::optional<double>>) {
          if (is_none(n))
            *p = std::nullopt;
          else if (n.is_integer() || n.is_floating_point())
            *p = get_double(n);
          else
            type_error(n, "a float or \"none\"");
        } else if constexpr (std::is_same_v<T, std::optional<int>>) {
          if (is_none(n))
            *p = std::nullopt;
          else if (n.is_integer())
            *p = get_int(n);
          else
            type_error(n, "an integer or \"none\"");
        } else if constexpr (std::is_same_v<T, std::vector<int>>) {
          *p = get_list<int>(n, f.scalar_as_list ? "an integer or an array of integers" : "an array of integers",
                             [&](const toml::node& e, std::string_view s) { return get_int(e, s); });
        } else if constexpr (std::is_same_v<T, std::vector<double>>) {
          *p = get_list<double>(n, f.scalar_as_list ? "a float or an array of floats" : "an array of floats",
                                [&](const toml::node& e, std::string_view s) { return get_double(e, s); });
        } else {
          *p = get_list<std::string>(n, f.scalar_as_list ? "a string or an array of strings" : "an array of strings",
                                     [&](const toml::node& e, std::string_view s) { return get_string(e, s); });
        }
      }
    }
  }
};

}  // namespace

Config config_from_toml(const std::string& text, const std::string& source) {
  const std::string where = "config " + source;
  toml::table root;
  check_toml_text(text, source);  // what toml++ would read with undefined behaviour
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& err) {
    user_error("{}:{}:{}: TOML syntax error: {}", source, err.source().begin.line, err.source().begin.column,
               err.description());
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
    // A field with a hook (rl.preset resets the fields it controls) is applied before the other
    // keys of its section, so that keys written in the file override it.
    std::stable_partition(entries.begin(), entries.end(), [&](const auto& e) {
      const ConfigField* f = find_config_field(section, e.first);
      return f && f->after_set;
    });
    for (const auto& [key, node] : entries) {
      const ConfigField* f = find_config_field(section, key);
      if (!f) user_error("{}: unknown key [{}] {}{}", where, section, key, suggest_key(section, key, false));
      TomlReader{where, *f}.read(*node, c);
      if (f->after_set) f->after_set(c);
    }
  }
  return c;
}

Config load_config_file(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (!std::filesystem::exists(status))
    user_error(
        "config file '{}' does not exist\n  fix: check the path, or omit --config to use the built-in "
        "defaults (`foldmoe config` prints them)",
        path);
  if (std::filesystem::is_directory(status))
    user_error(
        "config file '{}' is a directory, not a TOML file\n  fix: pass the TOML file itself (e.g. "
        "{}/config.toml)",
        path, path);
  std::ifstream in(path);
  if (!in) user_error("config file '{}' cannot be opened for reading\n  fix: check its permissions", path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) user_error("config file '{}' cannot be read\n  fix: check the file and its permissions", path);
  return config_from_toml(ss.str(), path);
}

}  // namespace foldmoe
