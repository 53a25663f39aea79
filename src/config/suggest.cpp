#include "config/suggest.h"

#include <fmt/format.h>

#include <algorithm>
#include <limits>

#include "config/config_fields.h"

namespace foldmoe {
namespace {

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

}  // namespace

std::string nearest_name(std::string_view name, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_d = std::numeric_limits<size_t>::max();
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(name, c);
    if (d < best_d) best_d = d, best = c;
  }
  const size_t limit = std::max<size_t>(2, name.size() / 3);
  return best_d <= limit ? std::string(best) : std::string();
}

std::string suggest_key(std::string_view section, std::string_view key, bool as_flag) {
  std::vector<std::string_view> same;
  for (const ConfigField& f : config_fields())
    if (f.section == section) same.push_back(f.key);
  if (std::string k = nearest_name(key, same); !k.empty())
    return as_flag ? fmt::format(" (did you mean `--{}.{}`?)", section, k) : fmt::format(" (did you mean `{}`?)", k);
  std::vector<std::string_view> keys;
  for (const ConfigField& f : config_fields()) keys.push_back(f.key);
  if (std::string k = nearest_name(key, keys); !k.empty()) {
    for (const ConfigField& f : config_fields())
      if (f.key == k)
        return as_flag ? fmt::format(" (did you mean `--{}.{}`?)", f.section, f.key)
                       : fmt::format(" (did you mean `[{}] {}`?)", f.section, f.key);
  }
  return "";
}

std::string suggest_section(std::string_view section) {
  const std::string s = nearest_name(section, config_sections());
  if (!s.empty()) return fmt::format(" (did you mean `[{}]`?)", s);
  std::string all;
  for (std::string_view x : config_sections()) all += fmt::format("{}[{}]", all.empty() ? "" : " ", x);
  return fmt::format(" (sections: {})", all);
}

}  // namespace foldmoe
