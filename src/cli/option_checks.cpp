#include "cli/option_checks.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/did_you_mean.h"
#include "core/check.h"

namespace foldmoe::cli {
namespace {

// A number without trailing characters (strtod/strtoll accept "3abc" otherwise).
bool parse_integer(const std::string& s, long long& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  out = std::strtoll(s.c_str(), &end, 10);
  return errno == 0 && *end == '\0';
}

bool parse_real(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);
  return *end == '\0';
}

// CLI11 aligns --help columns by bytes, so the descriptions it prints stay ASCII.
std::string ascii(std::string s) {
  for (const auto& [from, to] : {std::pair<std::string, std::string>{"≥", ">="}, {"≤", "<="}})
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at)) s.replace(at, from.size(), to);
  return s;
}

std::string number_text(double v) {
  return fmt::format("{}", v);
}

}  // namespace

std::string range_text(const RealRange& r) {
  const bool has_lo = std::isfinite(r.lo), has_hi = std::isfinite(r.hi);
  if (has_lo && has_hi)
    return fmt::format("in {}{}, {}{}", r.lo_open ? "(" : "[", number_text(r.lo), number_text(r.hi),
                       r.hi_open ? ")" : "]");
  if (has_lo) return fmt::format("{} {}", r.lo_open ? ">" : "≥", number_text(r.lo));
  if (has_hi) return fmt::format("{} {}", r.hi_open ? "<" : "≤", number_text(r.hi));
  return "that is finite";
}

CLI::Validator integer_at_least(const std::string& flag, long long min, const std::string& example, long long max) {
  const std::string rule = max == INT_MAX || max == LLONG_MAX ? fmt::format("an integer ≥ {}", min)
                                                              : fmt::format("an integer in [{}, {}]", min, max);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        long long v = 0;
        const bool number = parse_integer(s, v);
        if (!number || v < min || v > max)
          user_error("{} must be {}{} (got '{}'); fix: e.g. {} {}", flag, rule,
                     number && v > max ? fmt::format(" and at most {}", max) : "", s, flag, example);
        return "";
      },
      min == 0   ? "NONNEGATIVE"
      : min == 1 ? "POSITIVE"
                 : ascii(rule));
}

CLI::Validator any_integer(const std::string& flag, const std::string& example) {
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        long long v = 0;
        if (!parse_integer(s, v))
          user_error("{} must be an integer (got '{}'); fix: e.g. {} {}", flag, s, flag, example);
        return "";
      },
      "");
}

CLI::Validator real_in(const std::string& flag, RealRange r, const std::string& example) {
  const std::string rule = range_text(r);
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        double v = 0;
        const bool ok = parse_real(s, v) && std::isfinite(v) && (r.lo_open ? v > r.lo : v >= r.lo) &&
                        (r.hi_open ? v < r.hi : v <= r.hi);
        if (!ok) user_error("{} must be a number {} (got '{}'); fix: e.g. {} {}", flag, rule, s, flag, example);
        return "";
      },
      ascii(rule));
}

CLI::Validator one_of(const std::string& flag, std::vector<std::string> choices) {
  const std::string listed = fmt::format("{}", fmt::join(choices, " | "));
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        for (const std::string& c : choices)
          if (s == c) return "";
        const std::string near = closest_word(s, choices);
        user_error("{} must be one of {} (got '{}'){}", flag, listed, s,
                   near.empty() ? "" : fmt::format("; did you mean {} {}?", flag, near));
      },
      listed);
}

}  // namespace foldmoe::cli
