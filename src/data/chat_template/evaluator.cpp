#include "data/chat_template/evaluator.h"

#include <fmt/format.h>

#include <cmath>
#include <ctime>
#include <map>
#include <unordered_map>

#include "core/check.h"
#include "data/chat_template/builtins.h"

namespace foldmoe::data::chat {

namespace {

using K = Value::Kind;

// Limits that keep a hostile template from running away (jinja2's sandbox caps range() the same).
constexpr int64_t kMaxRange = 100000;
constexpr int64_t kMaxIterations = 10'000'000;
constexpr size_t kMaxOutputBytes = size_t(64) << 20;
constexpr int kMaxCallDepth = 64;

// Raised by the template itself (raise_exception): reported with its own message.
struct TemplateRaised {
  std::string message;
};

using Scope = std::unordered_map<std::string, Value>;

class Evaluator {
 public:
  Evaluator(const Template& t, const Dict& variables) : t_(t) {
    Scope root;
    for (const auto& [k, v] : variables.items) root[k] = v;
    add_globals(root);
    scopes_.push_back(std::move(root));
  }

  std::string run() {
    std::string out;
    exec(t_.body, out);
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };

  [[noreturn]] void fail(Pos p, const std::string& what) const { template_error(t_.origin, p, what); }

  void add_globals(Scope& s) {
    s["namespace"] = Value::function("namespace", [](CallArgs& a) {
      Value ns;
      ns.kind = K::Namespace;
      ns.dict = std::make_shared<Dict>();
      for (const Value& p : a.positional) {
        if (!p.is(K::Dict)) throw EvalError{"namespace() takes keyword arguments or a dict"};
        for (const auto& [k, v] : p.dict->items) ns.dict->set(k, v);
      }
      for (const auto& [k, v] : a.keyword) ns.dict->set(k, v);
      return ns;
    });
    s["range"] = Value::function("range", [](CallArgs& a) {
      if (!a.keyword.empty() || a.positional.empty() || a.positional.size() > 3)
        throw EvalError{"range() takes 1 to 3 integers"};
      std::vector<int64_t> n;
      for (const Value& p : a.positional) {
        if (!p.is(K::Int)) throw EvalError{"range() takes integers, got " + type_name(p)};
        n.push_back(p.i);
      }
      const int64_t start = n.size() > 1 ? n[0] : 0, stop = n.size() > 1 ? n[1] : n[0], step = n.size() > 2 ? n[2] : 1;
      if (step == 0) throw EvalError{"range() step must not be zero"};
      List out;
      for (int64_t x = start; step > 0 ? x < stop : x > stop; x += step) {
        if (int64_t(out.size()) >= kMaxRange) throw EvalError{"range() is too long (jinja2's sandbox allows 100000)"};
        out.push_back(Value::integer(x));
      }
      return Value::list_of(std::move(out));
    });
    s["raise_exception"] = Value::function("raise_exception", [](CallArgs& a) -> Value {
      throw TemplateRaised{a.positional.empty() ? std::string() : to_str(a.positional[0])};
    });
    s["strftime_now"] = Value::function("strftime_now", [](CallArgs& a) {
      const Value f = arg(a, 0, "format");
      if (!f.is(K::String)) throw EvalError{"strftime_now() needs a format string"};
      const std::time_t now = std::time(nullptr);
      std::tm tm{};
      localtime_r(&now, &tm);
      char buf[256];
      const size_t n = std::strftime(buf, sizeof buf, f.s.c_str(), &tm);
      return Value::string(std::string(buf, n));
    });
    s["dict"] = Value::function("dict", [](CallArgs& a) {
      Dict d;
      for (const auto& [k, v] : a.keyword) d.set(k, v);
      return Value::dict_of(std::move(d));
    });
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      const auto f = it->find(name);
      if (f != it->end()) return f->second;
    }
    return Value::undefined(name);
  }

  void emit(std::string& out, std::string_view s, Pos p) const {
    if (out.size() + s.size() > kMaxOutputBytes) fail(p, "the output grows beyond 64 MiB");
    out += s;
  }

  Flow exec(const Body& body, std::string& out) {
    for (const auto& s : body) {
      const Flow f = exec(*s, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  Flow exec(const Stmt& s, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text:
        emit(out, s.text, s.pos);
        return Flow::Normal;
      case Stmt::Kind::Output:
        emit(out, to_str(eval(*s.expr)), s.pos);
        return Flow::Normal;
      case Stmt::Kind::If:
        for (size_t k = 0; k < s.conditions.size(); ++k)
          if (truthy(eval(*s.conditions[k]))) return exec(s.bodies[k], out);
        if (s.bodies.size() > s.conditions.size()) return exec(s.bodies.back(), out);
        return Flow::Normal;
      case Stmt::Kind::For:
        exec_for(s, out);
        return Flow::Normal;
      case Stmt::Kind::Set: {
        Value v = eval(*s.expr);
        if (s.targets.size() == 1) {
          scopes_.back()[s.targets[0]] = std::move(v);
        } else {
          const Value ns = lookup(s.targets[0]);
          if (!ns.is(K::Namespace))
            fail(s.pos, "cannot assign the attribute '" + s.targets[1] + "' of '" + s.targets[0] +
                            "', which is not a namespace()");
          ns.dict->set(s.targets[1], std::move(v));
        }
        return Flow::Normal;
      }
      case Stmt::Kind::SetBlock: {
        std::string captured;
        exec(s.bodies[0], captured);
        scopes_.back()[s.targets[0]] = Value::string(std::move(captured));
        return Flow::Normal;
      }
      case Stmt::Kind::Macro:
        scopes_.back()[s.targets[0]] = make_macro(s);
        return Flow::Normal;
      case Stmt::Kind::Break:
        return Flow::Break;
      case Stmt::Kind::Continue:
        return Flow::Continue;
      case Stmt::Kind::Generation:
        return exec(s.bodies[0], out);
    }
    return Flow::Normal;
  }

  void exec_for(const Stmt& s, std::string& out) {
    List items = call_guard(s.expr->pos, [&] { return iterate(eval(*s.expr)); });
    if (s.filter) {
      // `for x in xs if cond`: the condition sees the loop variable, in the loop's scope.
      List kept;
      for (const Value& item : items) {
        scopes_.emplace_back();
        bind_targets(s, item);
        if (truthy(eval(*s.filter))) kept.push_back(item);
        scopes_.pop_back();
      }
      items = std::move(kept);
    }
    const int64_t n = int64_t(items.size());
    for (int64_t k = 0; k < n; ++k) {
      if (++iterations_ > kMaxIterations) fail(s.pos, "the template runs more than 10 million loop iterations");
      scopes_.emplace_back();
      bind_targets(s, items[size_t(k)]);
      Dict loop;
      loop.set("index0", Value::integer(k));
      loop.set("index", Value::integer(k + 1));
      loop.set("revindex0", Value::integer(n - k - 1));
      loop.set("revindex", Value::integer(n - k));
      loop.set("first", Value::boolean(k == 0));
      loop.set("last", Value::boolean(k == n - 1));
      loop.set("length", Value::integer(n));
      loop.set("depth", Value::integer(1));
      loop.set("depth0", Value::integer(0));
      loop.set("previtem", k > 0 ? items[size_t(k - 1)] : Value::undefined("previtem"));
      loop.set("nextitem", k + 1 < n ? items[size_t(k + 1)] : Value::undefined("nextitem"));
      loop.set("cycle", Value::function("cycle", [k](CallArgs& a) {
                 if (a.positional.empty()) throw EvalError{"loop.cycle() needs at least one value"};
                 return a.positional[size_t(k) % a.positional.size()];
               }));
      scopes_.back()["loop"] = Value::dict_of(std::move(loop));
      const Flow f = exec(s.bodies[0], out);
      scopes_.pop_back();
      if (f == Flow::Break) break;
    }
    if (n == 0 && s.bodies.size() > 1) exec(s.bodies[1], out);
  }

  void bind_targets(const Stmt& s, const Value& item) {
    if (s.targets.size() == 1) {
      scopes_.back()[s.targets[0]] = item;
      return;
    }
    const List parts = call_guard(s.pos, [&] { return iterate(item); });
    if (parts.size() != s.targets.size())
      fail(s.pos, fmt::format("cannot unpack {} values into {} loop variables", parts.size(), s.targets.size()));
    for (size_t k = 0; k < parts.size(); ++k) scopes_.back()[s.targets[k]] = parts[k];
  }

  Value make_macro(const Stmt& s) {
    const Stmt* def = &s;
    return Value::function(s.targets[0], [this, def](CallArgs& a) {
      if (++call_depth_ > kMaxCallDepth) throw EvalError{"macros call each other more than 64 deep"};
      Scope frame;
      for (size_t k = 0; k < def->params.size(); ++k) {
        Value v = arg(a, k, def->params[k].c_str());
        if (v.is(K::Undefined) && def->defaults[k]) v = eval(*def->defaults[k]);
        frame[def->params[k]] = v;
      }
      if (a.positional.size() > def->params.size())
        throw EvalError{"macro '" + def->targets[0] + "' takes fewer arguments"};
      // A macro sees the template's globals and its parameters, not the caller's locals.
      std::vector<Scope> saved = std::move(scopes_);
      scopes_.clear();
      scopes_.push_back(saved.front());
      scopes_.push_back(std::move(frame));
      std::string out;
      struct Restore {
        Evaluator& e;
        std::vector<Scope>& saved;
        ~Restore() {
          e.scopes_ = std::move(saved);
          --e.call_depth_;
        }
      } restore{*this, saved};
      exec(def->bodies[0], out);
      return Value::string(std::move(out));
    });
  }

  template <typename F>
  auto call_guard(Pos p, F&& f) -> decltype(f()) {
    try {
      return f();
    } catch (const EvalError& e) {
      fail(p, e.what);
    } catch (const TemplateRaised& r) {
      user_error(
          "chat template error K9: {}: the template refused the messages: {}\n  fix: give messages this template "
          "accepts, or use a named template (rl.chat_template = \"chatml\", \"llama3\" or \"plain\")",
          t_.origin, r.message);
    }
  }

  Value eval(const Expr& e) {
    return call_guard(e.pos, [&] { return eval_inner(e); });
  }

  CallArgs eval_args(const Expr& e, size_t first) {
    CallArgs a;
    const size_t nkw = e.kwnames.size();
    for (size_t k = first; k < e.kids.size(); ++k) {
      const size_t kw = k + nkw >= e.kids.size() ? k + nkw - e.kids.size() : size_t(-1);
      Value v = eval(*e.kids[k]);
      if (kw != size_t(-1))
        a.keyword.emplace_back(e.kwnames[kw], std::move(v));
      else
        a.positional.push_back(std::move(v));
    }
    return a;
  }

  static int64_t to_int(const Value& v) {
    if (v.is(K::Int)) return v.i;
    if (v.is(K::Bool)) return v.b;
    throw EvalError{"expected an integer, got " + type_name(v)};
  }
  static double to_double(const Value& v) { return v.is(K::Float) ? v.f : double(to_int(v)); }

  Value slice(const Value& obj, const Expr& e) {
    const bool is_str = obj.is(K::String);
    if (!is_str && !obj.is(K::List)) {
      if (obj.is(K::Undefined)) throw EvalError{"'" + obj.s + "' is undefined"};
      throw EvalError{"cannot slice a " + type_name(obj)};
    }
    const std::vector<std::string> cps = is_str ? code_points(obj.s) : std::vector<std::string>{};
    const int64_t n = is_str ? int64_t(cps.size()) : int64_t(obj.list->size());
    const auto part = [&](size_t k) -> std::optional<int64_t> {
      if (!e.kids[k]) return std::nullopt;
      const Value v = eval(*e.kids[k]);
      if (v.is(K::None)) return std::nullopt;
      return to_int(v);
    };
    const std::optional<int64_t> a = part(1), b = part(2), c = part(3);
    const int64_t step = c.value_or(1);
    if (step == 0) throw EvalError{"slice step cannot be zero"};
    // Python's slice.indices().
    const auto clamp = [&](std::optional<int64_t> x, int64_t dflt) {
      if (!x) return dflt;
      int64_t v = *x;
      if (v < 0) v += n;
      if (step > 0) return std::clamp<int64_t>(v, 0, n);
      return std::clamp<int64_t>(v, -1, n - 1);
    };
    const int64_t start = clamp(a, step > 0 ? 0 : n - 1), stop = clamp(b, step > 0 ? n : -1);
    std::string s;
    List l;
    for (int64_t k = start; step > 0 ? k < stop : k > stop; k += step) {
      if (is_str)
        s += cps[size_t(k)];
      else
        l.push_back((*obj.list)[size_t(k)]);
    }
    return is_str ? Value::string(std::move(s)) : Value::list_of(std::move(l));
  }

  Value binary(const std::string& op, const Value& a, const Value& b) {
    if (op == "~") return Value::string(to_str(a) + to_str(b));
    if (op == "==") return Value::boolean(equal(a, b));
    if (op == "!=") return Value::boolean(!equal(a, b));
    if (op == "<") return Value::boolean(less_than(a, b));
    if (op == ">") return Value::boolean(less_than(b, a));
    if (op == "<=") return Value::boolean(!less_than(b, a));
    if (op == ">=") return Value::boolean(!less_than(a, b));
    if (op == "in" || op == "not in") {
      CallArgs ca;
      ca.positional.push_back(b);
      if (!b.is(K::String) && !b.is(K::List) && !b.is(K::Dict) && !b.is(K::Undefined))
        throw EvalError{"argument of type '" + type_name(b) + "' is not iterable"};
      const bool in = apply_test("in", a, ca);
      return Value::boolean(op == "in" ? in : !in);
    }
    for (const Value* x : {&a, &b})
      if (x->is(K::Undefined))
        throw EvalError{x->s.empty() ? "an undefined value in '" + op + "'" : "'" + x->s + "' is undefined"};
    if (op == "+") {
      if (a.is(K::String) && b.is(K::String)) return Value::string(a.s + b.s);
      if (a.is(K::List) && b.is(K::List)) {
        List l = *a.list;
        l.insert(l.end(), b.list->begin(), b.list->end());
        return Value::list_of(std::move(l));
      }
    }
    if (op == "*" && (a.is(K::String) || a.is(K::List) || b.is(K::String) || b.is(K::List))) {
      const Value& seq = a.is(K::String) || a.is(K::List) ? a : b;
      const int64_t times = std::max<int64_t>(0, to_int(&seq == &a ? b : a));
      const size_t unit = seq.is(K::String) ? seq.s.size() : seq.list->size() * 16;
      if (unit && uint64_t(times) > kMaxOutputBytes / unit) throw EvalError{"the repeated sequence is too long"};
      if (seq.is(K::String)) {
        std::string s;
        for (int64_t k = 0; k < times; ++k) s += seq.s;
        return Value::string(std::move(s));
      }
      List l;
      for (int64_t k = 0; k < times; ++k) l.insert(l.end(), seq.list->begin(), seq.list->end());
      return Value::list_of(std::move(l));
    }
    if (!a.is_number() || !b.is_number())
      throw EvalError{"unsupported operand types for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'"};
    const bool fl = a.is(K::Float) || b.is(K::Float);
    if (op == "/") {
      if (to_double(b) == 0) throw EvalError{"division by zero"};
      return Value::floating(to_double(a) / to_double(b));
    }
    if (op == "**") {
      if (fl || to_int(b) < 0) return Value::floating(std::pow(to_double(a), to_double(b)));
      int64_t r = 1;
      for (int64_t k = 0; k < to_int(b); ++k) {
        if (__builtin_mul_overflow(r, to_int(a), &r)) throw EvalError{"integer overflow in **"};
      }
      return Value::integer(r);
    }
    if (fl) {
      const double x = to_double(a), y = to_double(b);
      if (op == "+") return Value::floating(x + y);
      if (op == "-") return Value::floating(x - y);
      if (op == "*") return Value::floating(x * y);
      if (y == 0) throw EvalError{"division by zero"};
      const double q = std::floor(x / y);
      return Value::floating(op == "//" ? q : x - q * y);
    }
    const int64_t x = to_int(a), y = to_int(b);
    int64_t r = 0;
    if (op == "+" && !__builtin_add_overflow(x, y, &r)) return Value::integer(r);
    if (op == "-" && !__builtin_sub_overflow(x, y, &r)) return Value::integer(r);
    if (op == "*" && !__builtin_mul_overflow(x, y, &r)) return Value::integer(r);
    if (op == "//" || op == "%") {
      if (y == 0) throw EvalError{"integer division or modulo by zero"};
      if (x == INT64_MIN && y == -1) throw EvalError{"integer overflow"};
      int64_t q = x / y, m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) {
        --q;
        m += y;
      }
      return Value::integer(op == "//" ? q : m);
    }
    throw EvalError{"integer overflow in " + op};
  }

  Value eval_inner(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::Literal:
        return e.value;
      case Expr::Kind::Name:
        return lookup(e.name);
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        List l;
        for (const auto& k : e.kids) l.push_back(eval(*k));
        return e.kind == Expr::Kind::Tuple ? Value::tuple_of(std::move(l)) : Value::list_of(std::move(l));
      }
      case Expr::Kind::Dict: {
        Dict d;
        for (size_t k = 0; k + 1 < e.kids.size(); k += 2) {
          const Value key = eval(*e.kids[k]);
          if (!key.is(K::String)) throw EvalError{"dict keys must be strings here, got " + type_name(key)};
          d.set(key.s, eval(*e.kids[k + 1]));
        }
        return Value::dict_of(std::move(d));
      }
      case Expr::Kind::GetAttr:
        return get_attr(eval(*e.kids[0]), e.name);
      case Expr::Kind::GetItem:
        return get_item(eval(*e.kids[0]), eval(*e.kids[1]));
      case Expr::Kind::Slice:
        return slice(eval(*e.kids[0]), e);
      case Expr::Kind::Call: {
        const Value f = eval(*e.kids[0]);
        CallArgs a = eval_args(e, 1);
        if (!f.is(K::Function)) {
          if (f.is(K::Undefined))
            throw EvalError{f.s.empty() ? "calling an undefined value"
                                        : "'" + f.s + "' is undefined or not a supported function or method"};
          throw EvalError{"'" + type_name(f) + "' object is not callable"};
        }
        return (*f.fn)(a);
      }
      case Expr::Kind::Filter: {
        const Value v = eval(*e.kids[0]);
        CallArgs a = eval_args(e, 1);
        return apply_filter(e.name, v, a);
      }
      case Expr::Kind::Test: {
        const Value v = eval(*e.kids[0]);
        CallArgs a = eval_args(e, 1);
        return Value::boolean(apply_test(e.name, v, a) != e.negate);
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.kids[0]);
        if (e.name == "not") return Value::boolean(!truthy(v));
        if (v.is(K::Float)) return Value::floating(e.name == "-" ? -v.f : v.f);
        const int64_t x = to_int(v);
        if (e.name == "-" && x == INT64_MIN) throw EvalError{"integer overflow"};
        return Value::integer(e.name == "-" ? -x : x);
      }
      case Expr::Kind::Binary: {
        if (e.name == "and" || e.name == "or") {
          Value a = eval(*e.kids[0]);
          if (truthy(a) == (e.name == "or")) return a;
          return eval(*e.kids[1]);
        }
        if (e.name == "chain") {
          Value left = eval(*e.kids[0]);
          for (size_t k = 0; k < e.kwnames.size(); ++k) {
            Value right = eval(*e.kids[k + 1]);
            if (!truthy(binary(e.kwnames[k], left, right))) return Value::boolean(false);
            left = std::move(right);
          }
          return Value::boolean(true);
        }
        const Value a = eval(*e.kids[0]);
        const Value b = eval(*e.kids[1]);
        return binary(e.name, a, b);
      }
      case Expr::Kind::CondExpr:
        if (truthy(eval(*e.kids[1]))) return eval(*e.kids[0]);
        return e.kids[2] ? eval(*e.kids[2]) : Value::undefined();
    }
    throw EvalError{"unknown expression"};
  }

  const Template& t_;
  std::vector<Scope> scopes_;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
};

}  // namespace

std::string render_template(const Template& t, const Dict& variables) {
  Evaluator e(t, variables);
  return e.run();
}

}  // namespace foldmoe::data::chat
