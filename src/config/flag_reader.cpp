// `--section.key=value` flags -> Config fields, in order (a later flag wins; rl.preset resets the
// fields it controls when it is read, so flags after it override it).
#include "config/flag_reader.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <limits>

#include "config/config_fields.h"
#include "config/problems.h"
#include "config/suggest.h"
#include "core/check.h"

namespace foldmoe {
namespace {

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
    user_error("{}: [{}] {} expects {}, got `{}`", where, f.section, f.key, expected,
               clip_value_text(std::string(text)));
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
      items.emplace_back(
          trim(t.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    return items;
  }

  void read(std::string_view text, Config& c) const {
    std::visit(
        [&](auto p) {
          using P = decltype(p);
          if constexpr (std::is_same_v<P, EnumRef>) {
            const std::string s = unquote(text);
            if (!p.codec->parse(s, p.value))
              user_error("{}: [{}] {} = \"{}\" is not one of {}", where, f.section, f.key, clip_value_text(s),
                         p.codec->choices());
          } else if constexpr (std::is_same_v<P, DoublePairRef>) {
            const std::vector<std::string> items = split_list(text);
            if (items.size() != 2) type_error(text, "two floats written [a,b] or a,b");
            *p.first = get_double(items[0], "two floats");
            *p.second = get_double(items[1], "two floats");
          } else {
            read_value(text, p);
          }
        },
        f.ref(c));
  }

  template <typename Ptr>
  void read_value(std::string_view text, Ptr p) const {
    {
      {
        using T = std::remove_cvref_t<decltype(*p)>;
        if constexpr (std::is_same_v<T, int>)
          *p = get_int(text);
        else if constexpr (std::is_same_v<T, int64_t>)
          *p = get_int64(text, "an integer");
        else if constexpr (std::is_same_v<T, double>)
          *p = get_double(text);
        else if constexpr (std::is_same_v<T, bool>) {
          const std::string_view t = trim(text);
          if (t == "true" || t == "1")
            *p = true;
          else if (t == "false" || t == "0")
            *p = false;
          else
            type_error(text, "a bool (true or false)");
        } else if constexpr (std::is_same_v<T, std::string>)
          *p = unquote(text);
        else if constexpr (std::is_same_v<T, std::optional<double>>) {
          if (trim(text) == "none")
            *p = std::nullopt;
          else
            *p = get_double(text, "a float or none");
        } else if constexpr (std::is_same_v<T, std::optional<int>>) {
          if (trim(text) == "none")
            *p = std::nullopt;
          else
            *p = get_int(text, "an integer or none");
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
      }
    }
  }
};

}  // namespace

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
    if (f->after_set) f->after_set(c);
  }
}

}  // namespace foldmoe
