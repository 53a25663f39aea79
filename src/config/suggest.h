// "Did you mean" for misspelt configuration names: the nearest section or key within a typo's
// edit distance, formatted for TOML messages or for flags.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace foldmoe {

// The candidate nearest to `name` within a typo's distance (max(2, |name| / 3)), or "".
std::string nearest_name(std::string_view name, const std::vector<std::string_view>& candidates);
// " (did you mean `x`?)" or "": the same section first, then the same (or a near) key in another
// section. as_flag: suggest `--section.key`.
std::string suggest_key(std::string_view section, std::string_view key, bool as_flag);
// " (did you mean `[model]`?)", or the list of sections when none is near.
std::string suggest_section(std::string_view section);

}  // namespace foldmoe
