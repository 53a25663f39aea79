#include "data/gpt_split.h"

#include <cmath>
#include <vector>

#include "core/check.h"

namespace foldmoe::data {

std::array<double, 3> parse_split(const std::string& split, const std::string& where) {
  const auto bad = [&](const std::string& what) {
    user_error(
        "data error D7: {} = \"{}\": {}.\n  fix: write up to three non-negative weights for train, valid and test, "
        "e.g. \"969,30,1\" or \"98,2,0\" (they are normalised; at least one > 0)",
        where, split, what);
  };
  std::vector<double> parts;
  size_t pos = 0;
  while (true) {
    const size_t end = split.find_first_of(",/", pos);
    std::string word = split.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    while (!word.empty() && word.front() == ' ') word.erase(word.begin());
    while (!word.empty() && word.back() == ' ') word.pop_back();
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(word, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (word.empty() || used != word.size() || !std::isfinite(v)) bad(fmt::format("'{}' is not a number", word));
    if (v < 0) bad(fmt::format("{} is negative", word));
    parts.push_back(v);
    if (end == std::string::npos) break;
    pos = end + 1;
  }
  if (parts.size() > 3) bad(fmt::format("{} parts; there are only three splits", parts.size()));
  parts.resize(3, 0.0);
  const double sum = (parts[0] + parts[1]) + parts[2];
  if (!(sum > 0)) bad("the weights sum to 0");
  return {parts[0] / sum, parts[1] / sum, parts[2] / sum};
}

SequenceRange split_range(const std::array<double, 3>& f, int k, int64_t num_sequences) {
  FOLDMOE_CHECK(k >= 0 && k < 3, "split {}", k);
  const double cum[4] = {0.0, f[0], f[0] + f[1], (f[0] + f[1]) + f[2]};
  const double n = static_cast<double>(num_sequences);
  // std::nearbyint in the default rounding mode rounds half to even, like Python's round().
  return {static_cast<int64_t>(std::nearbyint(cum[k] * n)), static_cast<int64_t>(std::nearbyint(cum[k + 1] * n))};
}

}  // namespace foldmoe::data
