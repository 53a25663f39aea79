// Checks for the values of subcommand options. A value that is not a number, or breaks the
// option's rule, is a UserError (exit 2) naming the option, the value, the rule and an example,
// e.g. "--max-new must be an integer ≥ 1 (got 0); fix: e.g. --max-new 64" (CLI11's own checks
// print unreadable ranges and exit with its codes).
#pragma once

#include <CLI/CLI.hpp>
#include <climits>
#include <limits>
#include <string>
#include <vector>

namespace foldmoe::cli {

// An integer in [min, max] (max defaults to the int range: most options are ints).
CLI::Validator integer_at_least(const std::string& flag, long long min, const std::string& example,
                                long long max = INT_MAX);

// Any integer that fits int64 (e.g. a seed).
CLI::Validator any_integer(const std::string& flag, const std::string& example);

// A finite real number between lo and hi; an open end excludes its bound.
struct RealRange {
  double lo = -std::numeric_limits<double>::infinity();
  bool lo_open = false;
  double hi = std::numeric_limits<double>::infinity();
  bool hi_open = false;
};
CLI::Validator real_in(const std::string& flag, RealRange range, const std::string& example);

// One of the listed words.
CLI::Validator one_of(const std::string& flag, std::vector<std::string> choices);

// The rule of a range in words: "≥ 1", "in (0, 1]", "any value".
std::string range_text(const RealRange& r);

}  // namespace foldmoe::cli
