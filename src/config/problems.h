// Collects rule violations so that one error lists all of them. Every violation carries a rule id
// (docs/rules.md lists each with its meaning) and prints as
//   "<layout|config> error <id>: <what>\n  fix: <fix>"
// ("layout" for the L rules of the parallel layout, "config" for every other rule).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace foldmoe {

struct RuleViolation {
  std::string id;  // "L6", "M1", "V1", ...
  std::string what;
  std::string fix;

  std::string message() const;
};

class Problems {
 public:
  void add(std::string_view id, std::string what, std::string fix);
  void append(const Problems& other);
  bool empty() const { return items_.empty(); }
  const std::vector<RuleViolation>& items() const { return items_; }
  std::vector<std::string> messages() const;
  // Throws one UserError: a single violation verbatim, several under "N <heading>:" (e.g.
  // "3 configuration errors:"). Does nothing when there is no violation.
  void raise(std::string_view heading = "configuration errors") const;

 private:
  std::vector<RuleViolation> items_;
};

// A value as quoted in a message: at most 60 characters.
inline std::string clip_value_text(std::string s) {
  if (s.size() > 60) {
    s.resize(57);
    s += "...";
  }
  return s;
}

}  // namespace foldmoe
