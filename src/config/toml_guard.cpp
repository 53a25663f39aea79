#include "config/toml_guard.h"

#include "core/check.h"

namespace foldmoe {
namespace {

bool bare_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

}  // namespace

void check_table_headers(const std::string& text, const std::string& source) {
  size_t line_start = 0;
  for (int line = 1; line_start <= text.size(); ++line) {
    size_t end = text.find('\n', line_start);
    if (end == std::string::npos) end = text.size();
    size_t i = line_start;
    const auto skip_blanks = [&] {
      while (i < end && (text[i] == ' ' || text[i] == '\t')) ++i;
    };
    skip_blanks();
    if (i < end && text[i] == '[') {
      ++i;
      const size_t after_bracket = i;
      skip_blanks();
      const bool spaced = i != after_bracket;
      // `[ [` is toml++'s own error ("brackets must be contiguous"), raised before any key is read.
      if (i < end && text[i] == '[' && spaced) {
        line_start = end + 1;
        continue;
      }
      if (i < end && text[i] == '[') {
        ++i;
        skip_blanks();
      }
      const char c = i < end ? text[i] : '\n';
      if (!(bare_key_char(c) || c == '"' || c == '\'' || c == ']'))
        user_error("{}:{}:{}: TOML syntax error: a table header '[' must be followed by a key name, got {}", source,
                   line, i - line_start + 1,
                   c == '\n' || c == '\r' ? std::string("the end of the line") : fmt::format("'{}'", c));
    }
    line_start = end + 1;
  }
}

}  // namespace foldmoe
