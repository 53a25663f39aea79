// Two kinds of failure (docs/design.md §3 rule 9):
//  - UserError: something the user wrote (config, layout, data file, checkpoint) is wrong. The
//    message names the value, the rule and the fix; the CLI prints it and exits with status 2.
//  - FOLDMOE_CHECK: an internal invariant broke. Prints file:line and aborts.
#pragma once

#include <fmt/format.h>

#include <stdexcept>
#include <string>

namespace foldmoe {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& what) : std::runtime_error(what) {}
};

template <typename... Args>
[[noreturn]] void user_error(fmt::format_string<Args...> f, Args&&... args) {
  throw UserError(fmt::format(f, std::forward<Args>(args)...));
}

[[noreturn]] void internal_failure(const char* file, int line, const char* cond, const std::string& msg);

}  // namespace foldmoe

#define FOLDMOE_CHECK(cond, ...)                                                              \
  do {                                                                                        \
    if (!(cond)) ::foldmoe::internal_failure(__FILE__, __LINE__, #cond, ::fmt::format("" __VA_ARGS__)); \
  } while (0)
