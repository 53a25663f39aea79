#include "data/chat_template/parser.h"

#include <set>

#include "data/chat_template/builtins.h"

namespace foldmoe::data::chat {

namespace {

// Nesting deeper than this is refused, so that a hostile template cannot exhaust the stack.
constexpr int kMaxDepth = 200;

class ExprParser {
 public:
  ExprParser(const std::vector<Token>& toks, const std::string& origin) : t_(toks), origin_(origin) {}

  const Token& peek(size_t ahead = 0) const { return t_[std::min(k_ + ahead, t_.size() - 1)]; }
  bool at_end() const { return peek().kind == Token::Kind::End; }
  bool is_op(const char* op, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::Op && peek(ahead).text == op;
  }
  bool is_name(const char* n, size_t ahead = 0) const {
    return peek(ahead).kind == Token::Kind::Name && peek(ahead).text == n;
  }
  const Token& next() { return t_[std::min(k_++, t_.size() - 1)]; }
  [[noreturn]] void fail(const Token& at, const std::string& what) const { template_error(origin_, at.pos, what); }
  void expect_op(const char* op) {
    if (!is_op(op)) fail(peek(), "expected '" + std::string(op) + "', found " + describe(peek()));
    ++k_;
  }
  std::string expect_name() {
    if (peek().kind != Token::Kind::Name) fail(peek(), "expected a name, found " + describe(peek()));
    return next().text;
  }
  void expect_end() {
    if (!at_end()) fail(peek(), "unexpected " + describe(peek()) + " (expected the end of the tag)");
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case Token::Kind::End:
        return "the end of the tag";
      case Token::Kind::String:
        return "a string";
      default:
        return "'" + t.text + "'";
    }
  }

  // expression := or-expr ['if' or-expr ['else' expression]]
  ExprPtr expression() {
    Guard g(*this);
    ExprPtr e = or_expr();
    while (is_name("if")) {
      const Pos p = next().pos;
      auto c = node(Expr::Kind::CondExpr, p);
      c->kids.push_back(std::move(e));
      c->kids.push_back(or_expr());
      if (is_name("else")) {
        ++k_;
        c->kids.push_back(expression());
      } else {
        c->kids.push_back(nullptr);
      }
      e = std::move(c);
    }
    return e;
  }

  // A comma list without brackets (for `for a, b in ...` and `set x = 1, 2`): a Tuple if it has a comma.
  ExprPtr tuple_or_expression() {
    ExprPtr first = expression();
    if (!is_op(",")) return first;
    auto t = node(Expr::Kind::Tuple, first->pos);
    t->kids.push_back(std::move(first));
    while (is_op(",")) {
      ++k_;
      if (at_end() || is_op(")") || is_name("in")) break;
      t->kids.push_back(expression());
    }
    return t;
  }

 private:
  struct Guard {
    explicit Guard(ExprParser& p) : p_(p) {
      if (++p_.depth_ > kMaxDepth) p_.fail(p_.peek(), "the expression is nested too deeply");
    }
    ~Guard() { --p_.depth_; }
    ExprParser& p_;
  };

  static ExprPtr node(Expr::Kind k, Pos p) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = p;
    return e;
  }
  static ExprPtr binary(std::string op, ExprPtr a, ExprPtr b, Pos p) {
    auto e = node(Expr::Kind::Binary, p);
    e->name = std::move(op);
    e->kids.push_back(std::move(a));
    e->kids.push_back(std::move(b));
    return e;
  }

  ExprPtr or_expr() {
    ExprPtr e = and_expr();
    while (is_name("or")) {
      const Pos p = next().pos;
      e = binary("or", std::move(e), and_expr(), p);
    }
    return e;
  }
  ExprPtr and_expr() {
    ExprPtr e = not_expr();
    while (is_name("and")) {
      const Pos p = next().pos;
      e = binary("and", std::move(e), not_expr(), p);
    }
    return e;
  }
  ExprPtr not_expr() {
    Guard g(*this);
    if (is_name("not")) {
      auto e = node(Expr::Kind::Unary, next().pos);
      e->name = "not";
      e->kids.push_back(not_expr());
      return e;
    }
    return compare();
  }
  ExprPtr compare() {
    ExprPtr e = math1();
    bool chained = false;
    while (true) {
      const Pos p = peek().pos;
      std::string op;
      if (peek().kind == Token::Kind::Op && (peek().text == "==" || peek().text == "!=" || peek().text == "<" ||
                                             peek().text == ">" || peek().text == "<=" || peek().text == ">=")) {
        op = next().text;
      } else if (is_name("in")) {
        ++k_;
        op = "in";
      } else if (is_name("not") && is_name("in", 1)) {
        k_ += 2;
        op = "not in";
      } else {
        return e;
      }
      // Python chains comparisons: a < b < c is (a < b) and (b < c), b evaluated once.
      if (chained) {  // not a parenthesised comparison on the left: `(a == b) != c` is no chain
        e->kwnames.push_back(op);
        e->kids.push_back(math1());
        continue;
      }
      auto chain = binary("chain", std::move(e), math1(), p);
      chain->kwnames.push_back(op);
      e = std::move(chain);
      chained = true;
    }
  }
  ExprPtr math1() {
    ExprPtr e = concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), concat(), t.pos);
    }
    return e;
  }
  ExprPtr concat() {
    ExprPtr e = math2();
    while (is_op("~")) {
      const Pos p = next().pos;
      e = binary("~", std::move(e), math2(), p);
    }
    return e;
  }
  ExprPtr math2() {
    ExprPtr e = power();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = next();
      e = binary(t.text, std::move(e), power(), t.pos);
    }
    return e;
  }
  ExprPtr power() {
    ExprPtr e = unary(true);
    while (is_op("**")) {
      const Pos p = next().pos;
      e = binary("**", std::move(e), unary(true), p);
    }
    return e;
  }
  ExprPtr unary(bool with_filter) {
    Guard g(*this);
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      const Token& t = next();
      e = node(Expr::Kind::Unary, t.pos);
      e->name = t.text;
      e->kids.push_back(unary(false));
    } else {
      e = primary();
    }
    e = postfix(std::move(e));
    if (with_filter) e = filters_and_tests(std::move(e));
    return e;
  }

  ExprPtr primary() {
    const Token& t = next();
    switch (t.kind) {
      case Token::Kind::Name: {
        auto e = node(Expr::Kind::Literal, t.pos);
        if (t.text == "true" || t.text == "True")
          e->value = Value::boolean(true);
        else if (t.text == "false" || t.text == "False")
          e->value = Value::boolean(false);
        else if (t.text == "none" || t.text == "None")
          e->value = Value::none();
        else {
          e->kind = Expr::Kind::Name;
          e->name = t.text;
        }
        return e;
      }
      case Token::Kind::String: {
        std::string s = t.text;
        while (peek().kind == Token::Kind::String) s += next().text;  // adjacent literals join
        auto e = node(Expr::Kind::Literal, t.pos);
        e->value = Value::string(std::move(s));
        return e;
      }
      case Token::Kind::Int: {
        auto e = node(Expr::Kind::Literal, t.pos);
        e->value = Value::integer(t.i);
        return e;
      }
      case Token::Kind::Float: {
        auto e = node(Expr::Kind::Literal, t.pos);
        e->value = Value::floating(t.f);
        return e;
      }
      case Token::Kind::Op:
        if (t.text == "(") {
          if (is_op(")")) {
            ++k_;
            return node(Expr::Kind::Tuple, t.pos);
          }
          ExprPtr first = expression();
          if (is_op(")")) {
            ++k_;
            return first;
          }
          auto tup = node(Expr::Kind::Tuple, t.pos);
          tup->kids.push_back(std::move(first));
          while (is_op(",")) {
            ++k_;
            if (is_op(")")) break;
            tup->kids.push_back(expression());
          }
          expect_op(")");
          return tup;
        }
        if (t.text == "[") {
          auto l = node(Expr::Kind::List, t.pos);
          while (!is_op("]")) {
            if (!l->kids.empty()) expect_op(",");
            if (is_op("]")) break;
            l->kids.push_back(expression());
          }
          ++k_;
          return l;
        }
        if (t.text == "{") {
          auto d = node(Expr::Kind::Dict, t.pos);
          while (!is_op("}")) {
            if (!d->kids.empty()) expect_op(",");
            if (is_op("}")) break;
            d->kids.push_back(expression());
            expect_op(":");
            d->kids.push_back(expression());
          }
          ++k_;
          return d;
        }
        break;
      default:
        break;
    }
    fail(t, "unexpected " + describe(t) + " (expected a value)");
  }

  ExprPtr postfix(ExprPtr e) {
    while (true) {
      if (is_op(".")) {
        const Pos p = next().pos;
        auto a = node(Expr::Kind::GetAttr, p);
        if (peek().kind == Token::Kind::Int) {  // `x.0` is x[0] in jinja2
          a->kind = Expr::Kind::GetItem;
          a->kids.push_back(std::move(e));
          auto idx = node(Expr::Kind::Literal, p);
          idx->value = Value::integer(next().i);
          a->kids.push_back(std::move(idx));
        } else {
          a->name = expect_name();
          a->kids.push_back(std::move(e));
        }
        e = std::move(a);
      } else if (is_op("[")) {
        e = subscript(std::move(e));
      } else if (is_op("(")) {
        auto c = node(Expr::Kind::Call, peek().pos);
        c->kids.push_back(std::move(e));
        call_args(*c);
        e = std::move(c);
      } else {
        return e;
      }
    }
  }

  ExprPtr subscript(ExprPtr obj) {
    const Pos p = next().pos;  // '['
    std::vector<ExprPtr> parts;
    bool is_slice = false;
    parts.push_back(is_op(":") || is_op("]") ? nullptr : expression());
    while (is_op(":") && parts.size() < 3) {
      ++k_;
      is_slice = true;
      parts.push_back(is_op(":") || is_op("]") ? nullptr : expression());
    }
    expect_op("]");
    if (!is_slice) {
      if (!parts[0]) fail(peek(), "an empty subscript []");
      auto e = node(Expr::Kind::GetItem, p);
      e->kids.push_back(std::move(obj));
      e->kids.push_back(std::move(parts[0]));
      return e;
    }
    auto e = node(Expr::Kind::Slice, p);
    e->kids.push_back(std::move(obj));
    for (auto& x : parts) e->kids.push_back(std::move(x));
    while (e->kids.size() < 4) e->kids.push_back(nullptr);
    return e;
  }

  // '(' [arg {',' arg}] ')', keyword arguments after positional ones.
  void call_args(Expr& c) {
    expect_op("(");
    bool first = true;
    while (!is_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (is_op(")")) break;
      if (peek().kind == Token::Kind::Name && is_op("=", 1)) {
        c.kwnames.push_back(next().text);
        ++k_;
        c.kids.push_back(expression());
      } else {
        if (!c.kwnames.empty()) fail(peek(), "a positional argument after a keyword argument");
        c.kids.push_back(expression());
      }
    }
    ++k_;
  }

  ExprPtr filters_and_tests(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        const Pos p = next().pos;
        auto f = node(Expr::Kind::Filter, p);
        f->name = expect_name();
        while (is_op(".")) {  // dotted filter names are not jinja2 builtins either
          ++k_;
          f->name += '.';
          f->name += expect_name();
        }
        if (!is_known_filter(f->name))
          fail(t_[k_ - 1], "the filter '" + f->name + "' is not supported (supported: " + known_filters() + ")");
        f->kids.push_back(std::move(e));
        if (is_op("(")) call_args(*f);
        e = std::move(f);
      } else if (is_name("is")) {
        const Pos p = next().pos;
        auto t = node(Expr::Kind::Test, p);
        if (is_name("not")) {
          ++k_;
          t->negate = true;
        }
        const Token& nt = peek();
        if (nt.kind == Token::Kind::Name) {
          t->name = next().text;
        } else if (nt.kind == Token::Kind::Op && (nt.text == "==" || nt.text == "!=" || nt.text == "<" ||
                                                  nt.text == ">" || nt.text == "<=" || nt.text == ">=")) {
          t->name = next().text;  // `x is == 3` is valid jinja2 (the test named "==")
        } else {
          fail(nt, "expected a test name after 'is', found " + describe(nt));
        }
        if (!is_known_test(t->name))
          fail(nt, "the test '" + t->name + "' is not supported (supported: " + known_tests() + ")");
        t->kids.push_back(std::move(e));
        if (is_op("(")) {
          call_args(*t);
        } else if (peek().kind == Token::Kind::String || peek().kind == Token::Kind::Int ||
                   peek().kind == Token::Kind::Float ||
                   (peek().kind == Token::Kind::Name && !is_name("else") && !is_name("or") && !is_name("and") &&
                    !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is"))) {
          // `x is divisibleby 3`, `x is sameas none`: one argument without parentheses.
          ExprPtr arg = postfix(primary());
          t->kids.push_back(std::move(arg));
        }
        e = std::move(t);
      } else {
        return e;
      }
    }
  }

  const std::vector<Token>& t_;
  const std::string& origin_;
  size_t k_ = 0;
  int depth_ = 0;
};

class TemplateParser {
 public:
  TemplateParser(std::vector<Piece> pieces, const std::string& origin) : p_(std::move(pieces)), origin_(origin) {}

  Body parse_all() {
    std::string end;
    Body b = body({}, end);
    return b;
  }

 private:
  // Statements up to one whose keyword is in `ends` (returned in `end`, its tag consumed).
  Body body(const std::set<std::string>& ends, std::string& end, Pos opened = {}, const std::string& what = {}) {
    if (++depth_ > kMaxDepth) template_error(origin_, opened, "blocks are nested too deeply");
    Body out;
    while (k_ < p_.size()) {
      Piece& pc = p_[k_++];
      if (pc.kind == Piece::Kind::Text) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Text;
        s->pos = pc.pos;
        s->text = std::move(pc.text);
        out.push_back(std::move(s));
        continue;
      }
      ExprParser ep(pc.tokens, origin_);
      if (pc.kind == Piece::Kind::Output) {
        auto s = std::make_unique<Stmt>();
        s->kind = Stmt::Kind::Output;
        s->pos = pc.pos;
        if (ep.at_end()) ep.fail(ep.peek(), "an empty {{ }}");
        s->expr = ep.expression();
        ep.expect_end();
        out.push_back(std::move(s));
        continue;
      }
      if (ep.peek().kind != Token::Kind::Name) ep.fail(ep.peek(), "expected a statement keyword after {%");
      const std::string kw = ep.next().text;
      if (ends.count(kw)) {
        end = kw;
        pending_ = std::make_unique<ExprParser>(std::move(ep));
        --depth_;
        return out;
      }
      out.push_back(statement(kw, pc, ep));
    }
    if (!ends.empty())
      template_error(origin_, opened,
                     "the {% " + what + " %} block is never closed (expected {% " + *ends.rbegin() + " %})");
    --depth_;
    return out;
  }

  // The parser of the tag that ended the last body (to read `elif` conditions and check ends).
  std::unique_ptr<ExprParser> take_pending() { return std::move(pending_); }

  std::unique_ptr<Stmt> statement(const std::string& kw, Piece& pc, ExprParser& ep) {
    auto s = std::make_unique<Stmt>();
    s->pos = pc.pos;
    if (kw == "if") {
      s->kind = Stmt::Kind::If;
      s->conditions.push_back(ep.expression());
      ep.expect_end();
      while (true) {
        std::string end;
        s->bodies.push_back(body({"elif", "else", "endif"}, end, pc.pos, "if"));
        auto tail = take_pending();
        if (end == "elif") {
          s->conditions.push_back(tail->expression());
          tail->expect_end();
          continue;
        }
        tail->expect_end();
        if (end == "else") {
          std::string end2;
          s->bodies.push_back(body({"endif"}, end2, pc.pos, "if"));
          take_pending()->expect_end();
        }
        break;
      }
    } else if (kw == "for") {
      s->kind = Stmt::Kind::For;
      s->targets.push_back(ep.expect_name());
      while (ep.is_op(",")) {
        ep.next();
        s->targets.push_back(ep.expect_name());
      }
      if (!ep.is_name("in"))
        ep.fail(ep.peek(), "expected 'in' in the for loop, found " + ExprParser::describe(ep.peek()));
      ep.next();
      s->expr = ep.tuple_or_expression();
      if (ep.is_name("if")) {
        ep.next();
        s->filter = ep.expression();
      }
      if (ep.is_name("recursive")) ep.fail(ep.peek(), "recursive for loops are not supported");
      ep.expect_end();
      std::string end;
      ++loop_depth_;
      s->bodies.push_back(body({"else", "endfor"}, end, pc.pos, "for"));
      --loop_depth_;
      take_pending()->expect_end();
      if (end == "else") {
        s->bodies.push_back(body({"endfor"}, end, pc.pos, "for"));
        take_pending()->expect_end();
      }
    } else if (kw == "set") {
      s->targets.push_back(ep.expect_name());
      if (ep.is_op(".")) {
        ep.next();
        s->targets.push_back(ep.expect_name());
      }
      if (ep.is_op(",")) ep.fail(ep.peek(), "assigning to several names at once is not supported");
      if (ep.is_op("=")) {
        ep.next();
        s->kind = Stmt::Kind::Set;
        s->expr = ep.tuple_or_expression();
        ep.expect_end();
      } else {
        if (s->targets.size() != 1) ep.fail(ep.peek(), "a block set needs a plain name");
        if (ep.is_op("|")) ep.fail(ep.peek(), "filtered block sets are not supported");
        ep.expect_end();
        s->kind = Stmt::Kind::SetBlock;
        std::string end;
        s->bodies.push_back(body({"endset"}, end, pc.pos, "set"));
        take_pending()->expect_end();
      }
    } else if (kw == "macro") {
      s->kind = Stmt::Kind::Macro;
      s->targets.push_back(ep.expect_name());
      ep.expect_op("(");
      while (!ep.is_op(")")) {
        if (!s->params.empty()) ep.expect_op(",");
        if (ep.is_op(")")) break;
        s->params.push_back(ep.expect_name());
        if (ep.is_op("=")) {
          ep.next();
          s->defaults.push_back(ep.expression());
        } else {
          s->defaults.push_back(nullptr);
        }
      }
      ep.next();
      ep.expect_end();
      std::string end;
      s->bodies.push_back(body({"endmacro"}, end, pc.pos, "macro"));
      auto tail = take_pending();
      if (tail->peek().kind == Token::Kind::Name) tail->next();  // {% endmacro name %}
      tail->expect_end();
    } else if (kw == "break" || kw == "continue") {
      if (loop_depth_ == 0) ep.fail(ep.peek(), kw + " outside a for loop");
      s->kind = kw == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue;
      ep.expect_end();
    } else if (kw == "generation") {
      // HF's assistant-mask marker: renders its body unchanged.
      s->kind = Stmt::Kind::Generation;
      ep.expect_end();
      std::string end;
      s->bodies.push_back(body({"endgeneration"}, end, pc.pos, "generation"));
      take_pending()->expect_end();
    } else {
      template_error(
          origin_, pc.pos,
          "the statement {% " + kw +
              " %} is not supported (supported: if/elif/else, for, set, macro, break, continue, generation)");
    }
    return s;
  }

  std::vector<Piece> p_;
  const std::string& origin_;
  size_t k_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;  // for loops around the statement being parsed (break/continue need one)
  std::unique_ptr<ExprParser> pending_;
};

}  // namespace

Template parse_template(std::string_view source, const std::string& origin) {
  Template t;
  t.origin = origin;
  TemplateParser p(lex_template(source, origin), t.origin);
  t.body = p.parse_all();
  return t;
}

}  // namespace foldmoe::data::chat
