#include "config/toml_guard.h"

#include <fmt/format.h>

#include "core/check.h"

namespace foldmoe {
namespace {

bool bare_key_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

// Where a scan position is: outside any string or comment, or inside one of them.
enum class In { Code, Comment, Basic, Literal, MultiBasic, MultiLiteral };

class Scanner {
 public:
  Scanner(const std::string& text, const std::string& source) : t_(text), source_(source) {}

  void run() {
    In in = In::Code;
    for (size_t i = 0; i < t_.size(); ++i) {
      const char c = t_[i];
      if (c == '\n') {
        if (in == In::Comment || in == In::Basic || in == In::Literal) in = In::Code;  // (unclosed: toml++'s error)
        ++line_;
        line_start_ = i + 1;
        if (in == In::Code) check_header(i + 1);
        continue;
      }
      if (i == 0) check_header(0);
      switch (in) {
        case In::Code:
          if (static_cast<unsigned char>(c) >= 0x80)
            fail(i, "a non-ASCII character outside a string or comment (quote it: keys and values are ASCII)");
          if (c == '#') in = In::Comment;
          if (c == '"') in = starts(i, "\"\"\"") ? (i += 2, In::MultiBasic) : In::Basic;
          if (c == '\'') in = starts(i, "'''") ? (i += 2, In::MultiLiteral) : In::Literal;
          break;
        case In::Basic:
          if (c == '\\')
            ++i;  // an escape: the next byte is not the closing quote
          else if (c == '"')
            in = In::Code;
          break;
        case In::MultiBasic:
          if (c == '\\')
            ++i;
          else if (starts(i, "\"\"\""))
            in = In::Code, i += 2;
          break;
        case In::Literal:
          if (c == '\'') in = In::Code;
          break;
        case In::MultiLiteral:
          if (starts(i, "'''")) in = In::Code, i += 2;
          break;
        case In::Comment:
          break;
      }
    }
  }

 private:
  bool starts(size_t i, const char* s) const { return t_.compare(i, std::char_traits<char>::length(s), s) == 0; }

  // A line that starts (after spaces and tabs) with '[' outside any string is a table header.
  void check_header(size_t i) {
    const auto blanks = [&] {
      while (i < t_.size() && (t_[i] == ' ' || t_[i] == '\t')) ++i;
    };
    blanks();
    if (i >= t_.size() || t_[i] != '[') return;
    const size_t after_bracket = ++i;
    blanks();
    if (i < t_.size() && t_[i] == '[') {
      if (i != after_bracket) return;  // `[ [`: toml++'s own error, raised before any key is read
      ++i;
      blanks();
    }
    const char c = i < t_.size() ? t_[i] : '\n';
    if (!(bare_key_char(c) || c == '"' || c == '\'' || c == ']'))
      fail(i, fmt::format("a table header '[' must be followed by a key name, got {}",
                          c == '\n' || c == '\r' ? std::string("the end of the line") : fmt::format("'{}'", c)));
  }

  [[noreturn]] void fail(size_t i, const std::string& what) const {
    user_error("{}:{}:{}: TOML syntax error: {}", source_, line_, i - line_start_ + 1, what);
  }

  const std::string& t_;
  const std::string& source_;
  int line_ = 1;
  size_t line_start_ = 0;
};

}  // namespace

void check_toml_text(const std::string& text, const std::string& source) {
  Scanner(text, source).run();
}

}  // namespace foldmoe
