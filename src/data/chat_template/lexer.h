// Splits a chat template into text, `{{ expression }}` and `{% statement %}` pieces, applying the
// whitespace rules HF renders with (jinja2 with trim_blocks and lstrip_blocks, `-`/`+` modifiers,
// newlines normalised to "\n", one trailing newline dropped), and splits the inside of each tag
// into tokens. Comments are dropped here.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data::chat {

struct Pos {
  int line = 1, col = 1;
};

struct Token {
  enum class Kind { Name, Int, Float, String, Op, End };
  Kind kind = Kind::End;
  std::string text;  // the name, operator, or the string literal's value (escapes processed)
  int64_t i = 0;
  double f = 0;
  Pos pos;
};

struct Piece {
  enum class Kind { Text, Output, Statement };
  Kind kind = Kind::Text;
  std::string text;           // Text
  std::vector<Token> tokens;  // Output, Statement; ends with an End token
  Pos pos;
};

// `origin` names the template in errors (a file, or "template \"chatml\""). UserError (rule K9) for
// an unterminated tag, comment or string, or a character no token starts with.
std::vector<Piece> lex_template(std::string_view source, const std::string& origin);

// The text of a K9 refusal: where, what, and the fix.
[[noreturn]] void template_error(const std::string& origin, Pos pos, const std::string& what);

}  // namespace foldmoe::data::chat
