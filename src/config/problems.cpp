#include "config/problems.h"

#include <fmt/format.h>

#include "core/check.h"

namespace foldmoe {

std::string RuleViolation::message() const {
  const bool layout = !id.empty() && id[0] == 'L';
  return fmt::format("{} error {}: {}\n  fix: {}", layout ? "layout" : "config", id, what, fix);
}

void Problems::add(std::string_view id, std::string what, std::string fix) {
  items_.push_back({std::string(id), std::move(what), std::move(fix)});
}

void Problems::append(const Problems& other) {
  items_.insert(items_.end(), other.items_.begin(), other.items_.end());
}

std::vector<std::string> Problems::messages() const {
  std::vector<std::string> out;
  for (const RuleViolation& v : items_) out.push_back(v.message());
  return out;
}

void Problems::raise(std::string_view heading) const {
  if (items_.empty()) return;
  if (items_.size() == 1) throw UserError(items_[0].message());
  std::string msg = fmt::format("{} {}:", items_.size(), heading);
  for (const RuleViolation& v : items_) {
    msg += '\n';
    msg += v.message();
  }
  throw UserError(msg);
}

}  // namespace foldmoe
