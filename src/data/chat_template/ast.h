// The syntax tree of a chat template: expressions and statements of the supported jinja2 subset
// (docs/chat-templates.md).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/chat_template/lexer.h"
#include "data/chat_template/value.h"

namespace foldmoe::data::chat {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // kids
    Tuple,     // kids (a parenthesised or bare comma list; a list value)
    Dict,      // kids: key, value, key, value ...
    GetAttr,   // kids[0].name
    GetItem,   // kids[0][kids[1]]
    Slice,     // kids[0][kids[1]:kids[2]:kids[3]] (absent parts are null)
    Call,      // kids[0](kids[1..]); the last kwnames.size() arguments are keyword arguments
    Filter,    // kids[0] | name(kids[1..]) with kwnames as in Call
    Test,      // kids[0] is [not] name(kids[1..])
    Unary,     // name ("-", "+", "not") kids[0]
    Binary,    // kids[0] name kids[1]: + - * / // % ** ~ and or; "chain": kids[0] kwnames[0] kids[1] kwnames[1] ...
               // (comparisons, in, not in)
    CondExpr,  // kids[0] if kids[1] else kids[2] (kids[2] may be null)
  };
  Kind kind = Kind::Literal;
  Pos pos;
  std::string name;
  Value value;
  bool negate = false;  // Test: "is not"
  std::vector<ExprPtr> kids;
  std::vector<std::string> kwnames;
};

struct Stmt;
using Body = std::vector<std::unique_ptr<Stmt>>;

struct Stmt {
  enum class Kind { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Generation };
  Kind kind = Kind::Text;
  Pos pos;
  std::string text;                  // Text
  ExprPtr expr;                      // Output, Set value, For iterable
  std::vector<ExprPtr> conditions;   // If: one per branch (if, elif ...)
  std::vector<Body> bodies;          // If: one per condition, then else; For: body, else; others: body
  std::vector<std::string> targets;  // For: loop variables; Set/SetBlock: the name (and attribute); Macro: name
  ExprPtr filter;                    // For: `for x in y if filter`
  // Macro parameters and their defaults (null = required).
  std::vector<std::string> params;
  std::vector<ExprPtr> defaults;
};

struct Template {
  std::string origin;
  Body body;
};

}  // namespace foldmoe::data::chat
