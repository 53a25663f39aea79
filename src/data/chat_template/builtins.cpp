#include "data/chat_template/builtins.h"

#include <fmt/format.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <set>

#include "data/tokenizers/utf8.h"

namespace foldmoe::data::chat {

namespace {

using K = Value::Kind;

[[noreturn]] void fail(const std::string& what) {
  throw EvalError{what};
}

const std::set<std::string>& filter_names() {
  static const std::set<std::string> names = {
      "trim",    "length", "count", "tojson", "string",  "upper",   "lower",    "capitalize", "title",
      "default", "d",      "first", "last",   "join",    "items",   "dictsort", "selectattr", "rejectattr",
      "select",  "reject", "map",   "list",   "reverse", "replace", "int",      "float",      "abs",
      "safe",    "unique", "sort",  "sum",    "min",     "max"};
  return names;
}
const std::set<std::string>& test_names() {
  static const std::set<std::string> names = {
      "defined",     "undefined", "none",     "boolean",  "false",    "true", "integer",  "float",       "number",
      "string",      "mapping",   "iterable", "sequence", "callable", "odd",  "even",     "divisibleby", "eq",
      "equalto",     "==",        "ne",       "!=",       "lt",       "<",    "lessthan", "gt",          ">",
      "greaterthan", "le",        "<=",       "ge",       ">=",       "in",   "sameas",   "lower",       "upper"};
  return names;
}

std::string join_names(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& n : s) out += (out.empty() ? "" : ", ") + n;
  return out;
}

void require_string(const Value& v, const char* what) {
  if (!v.is(K::String)) fail(fmt::format("{} needs a string, got {}", what, type_name(v)));
}

int64_t as_int(const Value& v, const char* what) {
  if (v.is(K::Int)) return v.i;
  if (v.is(K::Bool)) return v.b;
  fail(fmt::format("{} needs an integer, got {}", what, type_name(v)));
}

// Python's str.strip family: `chars` none = Unicode whitespace.
std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
  const std::vector<std::string> cps = code_points(s);
  std::vector<std::string> set;
  const bool ws = chars.is(K::Undefined) || chars.is(K::None);
  if (!ws) {
    require_string(chars, "strip(chars)");
    set = code_points(chars.s);
  }
  const auto strippable = [&](const std::string& c) {
    if (ws) {
      size_t k = 0;
      return tok::is_unicode_whitespace(tok::next_code_point(c, k));
    }
    return std::find(set.begin(), set.end(), c) != set.end();
  };
  size_t b = 0, e = cps.size();
  if (left)
    while (b < e && strippable(cps[b])) ++b;
  if (right)
    while (e > b && strippable(cps[e - 1])) --e;
  std::string out;
  for (size_t k = b; k < e; ++k) out += cps[k];
  return out;
}

// Python's str.upper/str.lower: full Unicode case mapping (ICU's root locale; "ß".upper() == "SS").
std::string case_map(const std::string& s, bool upper) {
  if (s.empty()) return s;
  UErrorCode st = U_ZERO_ERROR;
  int32_t n = 0;
  u_strFromUTF8WithSub(nullptr, 0, &n, s.data(), int32_t(s.size()), 0xFFFD, nullptr, &st);
  std::u16string in(size_t(n), u'\0');
  st = U_ZERO_ERROR;
  u_strFromUTF8WithSub(reinterpret_cast<UChar*>(in.data()), n, &n, s.data(), int32_t(s.size()), 0xFFFD, nullptr, &st);
  std::u16string out(in.size() * 3 + 8, u'\0');
  st = U_ZERO_ERROR;
  const auto map = upper ? u_strToUpper : u_strToLower;
  const int32_t m = map(reinterpret_cast<UChar*>(out.data()), int32_t(out.size()),
                        reinterpret_cast<const UChar*>(in.data()), int32_t(in.size()), "", &st);
  if (U_FAILURE(st)) fail("cannot change the case of the string");
  std::string r(size_t(m) * 3 + 4, '\0');
  int32_t k = 0;
  st = U_ZERO_ERROR;
  u_strToUTF8(r.data(), int32_t(r.size()), &k, reinterpret_cast<const UChar*>(out.data()), m, &st);
  if (U_FAILURE(st)) fail("cannot change the case of the string");
  r.resize(size_t(k));
  return r;
}
std::string to_upper(const std::string& s) {
  return case_map(s, true);
}
std::string to_lower(const std::string& s) {
  return case_map(s, false);
}
std::string capitalize(const std::string& s) {
  if (s.empty()) return s;
  const size_t n = std::max<size_t>(1, tok::utf8_char_len(s, 0));
  return case_map(s.substr(0, n), true) + case_map(s.substr(n), false);
}

std::string replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
  if (from.empty()) {  // Python inserts `to` between code points and at both ends
    std::string out;
    int64_t n = 0;
    const std::vector<std::string> cps = code_points(s);
    for (size_t k = 0; k <= cps.size(); ++k) {
      if (count < 0 || n < count) {
        out += to;
        ++n;
      }
      if (k < cps.size()) out += cps[k];
    }
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    const size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out += s.substr(pos, at - pos) + to;
    pos = at + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
  List out;
  if (sep.is(K::Undefined) || sep.is(K::None)) {
    const std::vector<std::string> cps = code_points(s);
    const auto space = [](const std::string& c) {
      size_t k = 0;
      return tok::is_unicode_whitespace(tok::next_code_point(c, k));
    };
    size_t k = 0;
    while (k < cps.size()) {
      while (k < cps.size() && space(cps[k])) ++k;
      if (k == cps.size()) break;
      std::string word;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        for (; k < cps.size(); ++k) word += cps[k];
        // Python strips trailing whitespace from the remainder only when splitting stopped early.
        out.push_back(Value::string(strip(word, Value::undefined(), false, true)));
        break;
      }
      while (k < cps.size() && !space(cps[k])) word += cps[k++];
      out.push_back(Value::string(word));
    }
    return Value::list_of(std::move(out));
  }
  require_string(sep, "split(sep)");
  if (sep.s.empty()) fail("split(): empty separator");
  size_t pos = 0;
  while (maxsplit < 0 || int64_t(out.size()) < maxsplit) {
    const size_t at = s.find(sep.s, pos);
    if (at == std::string::npos) break;
    out.push_back(Value::string(s.substr(pos, at - pos)));
    pos = at + sep.s.size();
  }
  out.push_back(Value::string(s.substr(pos)));
  return Value::list_of(std::move(out));
}

bool starts_or_ends(const std::string& s, const Value& affix, bool start) {
  const auto one = [&](const Value& a) {
    require_string(a, start ? "startswith()" : "endswith()");
    if (a.s.size() > s.size()) return false;
    return start ? s.compare(0, a.s.size(), a.s) == 0 : s.compare(s.size() - a.s.size(), a.s.size(), a.s) == 0;
  };
  if (affix.is(K::List)) {
    for (const Value& a : *affix.list)
      if (one(a)) return true;
    return false;
  }
  return one(affix);
}

// The code-point offset of byte offset `b` in s.
int64_t cp_index(const std::string& s, size_t b) {
  return int64_t(code_points(s.substr(0, b)).size());
}

Value bound(const Value& obj, const std::string& name, std::function<Value(const Value&, CallArgs&)> f) {
  return Value::function(name, [obj, f = std::move(f)](CallArgs& a) { return f(obj, a); });
}

Value string_method(const Value& obj, const std::string& name) {
  if (name == "startswith" || name == "endswith")
    return bound(obj, name, [start = name == "startswith"](const Value& o, CallArgs& a) {
      return Value::boolean(starts_or_ends(o.s, arg(a, 0, "prefix"), start));
    });
  if (name == "strip" || name == "lstrip" || name == "rstrip")
    return bound(obj, name, [name](const Value& o, CallArgs& a) {
      return Value::string(strip(o.s, arg(a, 0, "chars"), name != "rstrip", name != "lstrip"));
    });
  if (name == "split")
    return bound(obj, name, [](const Value& o, CallArgs& a) {
      const Value m = arg(a, 1, "maxsplit", Value::integer(-1));
      return split(o.s, arg(a, 0, "sep"), as_int(m, "split(maxsplit)"));
    });
  if (name == "replace")
    return bound(obj, name, [](const Value& o, CallArgs& a) {
      const Value from = arg(a, 0, "old"), to = arg(a, 1, "new"), n = arg(a, 2, "count", Value::integer(-1));
      require_string(from, "replace(old)");
      require_string(to, "replace(new)");
      return Value::string(replace(o.s, from.s, to.s, as_int(n, "replace(count)")));
    });
  if (name == "upper") return bound(obj, name, [](const Value& o, CallArgs&) { return Value::string(to_upper(o.s)); });
  if (name == "lower") return bound(obj, name, [](const Value& o, CallArgs&) { return Value::string(to_lower(o.s)); });
  if (name == "capitalize")
    return bound(obj, name, [](const Value& o, CallArgs&) { return Value::string(capitalize(o.s)); });
  if (name == "title")
    return bound(obj, name, [](const Value& o, CallArgs&) {
      // Python's str.title: a letter after a non-letter is upper case, every other letter lower case.
      std::string out;
      bool after_letter = false;
      for (char c : o.s) {
        const bool letter = std::isalpha(static_cast<unsigned char>(c)) != 0;
        out += letter ? char(after_letter ? std::tolower(static_cast<unsigned char>(c))
                                          : std::toupper(static_cast<unsigned char>(c)))
                      : c;
        after_letter = letter;
      }
      return Value::string(out);
    });
  if (name == "find" || name == "count")
    return bound(obj, name, [name](const Value& o, CallArgs& a) {
      const Value sub = arg(a, 0, "sub");
      require_string(sub, "find()/count()");
      if (name == "find") {
        const size_t at = o.s.find(sub.s);
        return Value::integer(at == std::string::npos ? -1 : cp_index(o.s, at));
      }
      if (sub.s.empty()) return Value::integer(int64_t(code_points(o.s).size()) + 1);
      int64_t n = 0;
      for (size_t at = o.s.find(sub.s); at != std::string::npos; at = o.s.find(sub.s, at + sub.s.size())) ++n;
      return Value::integer(n);
    });
  if (name == "join")
    return bound(obj, name, [](const Value& o, CallArgs& a) {
      std::string out;
      bool first = true;
      for (const Value& v : iterate(arg(a, 0, "iterable"))) {
        require_string(v, "join()");
        out += (first ? "" : o.s) + v.s;
        first = false;
      }
      return Value::string(out);
    });
  return Value::undefined(name);
}

Value dict_method(const Value& obj, const std::string& name) {
  if (name == "get")
    return bound(obj, name, [](const Value& o, CallArgs& a) {
      const Value key = arg(a, 0, "key");
      const Value* v = key.is(K::String) ? o.dict->find(key.s) : nullptr;
      return v ? *v : arg(a, 1, "default", Value::none());
    });
  if (name == "items" || name == "keys" || name == "values")
    return bound(obj, name, [name](const Value& o, CallArgs&) {
      List out;
      for (const auto& [k, v] : o.dict->items) {
        if (name == "items")
          out.push_back(Value::tuple_of({Value::string(k), v}));
        else
          out.push_back(name == "keys" ? Value::string(k) : v);
      }
      return Value::list_of(std::move(out));
    });
  return Value::undefined(name);
}

// An attribute path such as "function.name", as selectattr/map take it.
Value attribute_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t pos = 0;
  while (true) {
    const size_t dot = path.find('.', pos);
    const std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (cur.is(K::Undefined)) return cur;
    cur = get_item(cur, Value::string(part));
    if (dot == std::string::npos) return cur;
    pos = dot + 1;
  }
}

CallArgs rest(const CallArgs& a, size_t from) {
  CallArgs r;
  for (size_t k = from; k < a.positional.size(); ++k) r.positional.push_back(a.positional[k]);
  return r;
}

Value select(const Value& v, CallArgs& a, bool by_attr, bool keep) {
  List out;
  for (const Value& item : iterate(v)) {
    size_t k = 0;
    const Value target = by_attr ? attribute_path(item,
                                                  [&] {
                                                    const Value n = arg(a, k++, "attribute");
                                                    require_string(n, "selectattr(attribute)");
                                                    return n.s;
                                                  }())
                                 : item;
    bool ok;
    if (a.positional.size() <= k) {
      ok = truthy(target);
    } else {
      const Value t = a.positional[k];
      require_string(t, "the test name");
      if (!is_known_test(t.s)) fail("the test '" + t.s + "' is not supported");
      CallArgs ta = rest(a, k + 1);
      ok = apply_test(t.s, target, ta);
    }
    if (ok == keep) out.push_back(item);
  }
  return Value::list_of(std::move(out));
}

double as_double(const Value& v) {
  return v.is(K::Float) ? v.f : double(v.is(K::Bool) ? v.b : v.i);
}

}  // namespace

bool is_known_filter(const std::string& name) {
  return filter_names().count(name) > 0;
}
bool is_known_test(const std::string& name) {
  return test_names().count(name) > 0;
}
std::string known_filters() {
  return join_names(filter_names());
}
std::string known_tests() {
  return join_names(test_names());
}

Value arg(CallArgs& a, size_t k, const char* name, Value fallback) {
  for (const auto& [n, v] : a.keyword)
    if (n == name) return v;
  if (k < a.positional.size()) return a.positional[k];
  return fallback;
}

int64_t length_of(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return 0;
    case K::String:
      return int64_t(code_points(v.s).size());
    case K::List:
      return int64_t(v.list->size());
    case K::Dict:
      return int64_t(v.dict->items.size());
    default:
      fail(fmt::format("object of type '{}' has no len()", type_name(v)));
  }
}

List iterate(const Value& v) {
  switch (v.kind) {
    case K::Undefined:
      return {};
    case K::List:
      return *v.list;
    case K::String: {
      List out;
      for (std::string& c : code_points(v.s)) out.push_back(Value::string(std::move(c)));
      return out;
    }
    case K::Dict: {
      List out;
      for (const auto& kv : v.dict->items) out.push_back(Value::string(kv.first));
      return out;
    }
    default:
      fail(fmt::format("'{}' object is not iterable", type_name(v)));
  }
}

bool less_than(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is(K::Float) || b.is(K::Float)) return as_double(a) < as_double(b);
    return as_int(a, "<") < as_int(b, "<");
  }
  if (a.is(K::String) && b.is(K::String)) return a.s < b.s;
  if (a.is(K::List) && b.is(K::List)) {
    const List &x = *a.list, &y = *b.list;
    for (size_t k = 0; k < std::min(x.size(), y.size()); ++k)
      if (!equal(x[k], y[k])) return less_than(x[k], y[k]);
    return x.size() < y.size();
  }
  fail(fmt::format("'<' not supported between instances of '{}' and '{}'", type_name(a), type_name(b)));
}

Value get_attr(const Value& obj, const std::string& name) {
  switch (obj.kind) {
    case K::Undefined:
      fail(obj.s.empty() ? "an undefined value has no attribute '" + name + "'" : "'" + obj.s + "' is undefined");
    case K::String:
      return string_method(obj, name);
    case K::Dict: {
      Value m = dict_method(obj, name);
      if (!m.is(K::Undefined)) return m;
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(name);
    }
    case K::Namespace: {
      const Value* v = obj.dict->find(name);
      return v ? *v : Value::undefined(name);
    }
    default:
      return Value::undefined(name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is(K::Undefined))
    fail(obj.s.empty() ? "an undefined value cannot be subscripted" : "'" + obj.s + "' is undefined");
  if ((obj.is(K::List) || obj.is(K::String)) && (key.is(K::Int) || key.is(K::Bool))) {
    const int64_t n = obj.is(K::List) ? int64_t(obj.list->size()) : length_of(obj);
    int64_t k = key.is(K::Bool) ? key.b : key.i;
    if (k < 0) k += n;
    if (k < 0 || k >= n) return Value::undefined();
    if (obj.is(K::List)) return (*obj.list)[size_t(k)];
    return Value::string(code_points(obj.s)[size_t(k)]);
  }
  if (obj.is(K::Dict) || obj.is(K::Namespace)) {
    if (key.is(K::String)) {
      const Value* v = obj.dict->find(key.s);
      if (v) return *v;
      return obj.is(K::Dict) ? dict_method(obj, key.s) : Value::undefined(key.s);
    }
    return Value::undefined();
  }
  if (key.is(K::String)) return get_attr(obj, key.s);
  return Value::undefined();
}

Value apply_filter(const std::string& name, const Value& v, CallArgs& a) {
  if (name == "trim") {
    return Value::string(strip(to_str(v), arg(a, 0, "chars"), true, true));
  }
  if (name == "length" || name == "count") return Value::integer(length_of(v));
  if (name == "tojson") {
    const Value ea = arg(a, 0, "ensure_ascii", Value::boolean(false));
    if (truthy(ea)) fail("tojson(ensure_ascii=True) is not supported");
    const Value indent = arg(a, 1, "indent", Value::none());
    const Value sort = arg(a, 3, "sort_keys", Value::boolean(false));
    if (!arg(a, 2, "separators", Value::none()).is(K::None)) fail("tojson(separators=...) is not supported");
    return Value::string(to_json(v, indent.is(K::None) ? -1 : int(as_int(indent, "tojson(indent)")), truthy(sort)));
  }
  if (name == "string") return Value::string(to_str(v));
  if (name == "upper") return Value::string(to_upper(to_str(v)));
  if (name == "lower") return Value::string(to_lower(to_str(v)));
  if (name == "capitalize") return Value::string(capitalize(to_str(v)));
  if (name == "title") {
    // jinja2: split before runs of "-", whitespace and opening brackets; each part capitalised.
    std::string s = to_str(v), out;
    bool start = true;
    for (char c : s) {
      const bool sep =
          c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || std::isspace(static_cast<unsigned char>(c));
      out += sep     ? c
             : start ? char(std::toupper(static_cast<unsigned char>(c)))
                     : char(std::tolower(static_cast<unsigned char>(c)));
      start = sep;
    }
    return Value::string(out);
  }
  if (name == "default" || name == "d") {
    const bool boolean = truthy(arg(a, 1, "boolean", Value::boolean(false)));
    if (v.is(K::Undefined) || (boolean && !truthy(v))) return arg(a, 0, "default_value", Value::string(""));
    return v;
  }
  if (name == "first" || name == "last") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined();
    return name == "first" ? items.front() : items.back();
  }
  if (name == "join") {
    const Value sep = arg(a, 0, "d", Value::string(""));
    const Value attr = arg(a, 1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const Value& item : iterate(v)) {
      out += (first ? "" : to_str(sep)) + to_str(attr.is(K::None) ? item : attribute_path(item, to_str(attr)));
      first = false;
    }
    return Value::string(out);
  }
  if (name == "items") {
    if (v.is(K::Undefined)) return Value::list_of({});
    if (!v.is(K::Dict)) fail(fmt::format("the items filter needs a mapping, got {}", type_name(v)));
    List out;
    for (const auto& [k, x] : v.dict->items) out.push_back(Value::tuple_of({Value::string(k), x}));
    return Value::list_of(std::move(out));
  }
  if (name == "dictsort") {
    if (!v.is(K::Dict)) fail(fmt::format("dictsort needs a mapping, got {}", type_name(v)));
    std::vector<std::pair<std::string, Value>> items = v.dict->items;
    std::stable_sort(items.begin(), items.end(),
                     [](const auto& x, const auto& y) { return to_lower(x.first) < to_lower(y.first); });
    List out;
    for (auto& [k, x] : items) out.push_back(Value::tuple_of({Value::string(k), x}));
    return Value::list_of(std::move(out));
  }
  if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return select(v, a, false, name == "select");
  if (name == "map") {
    List out;
    const Value attr = arg(a, 99, "attribute");
    if (!attr.is(K::Undefined)) {
      const Value dflt = arg(a, 99, "default");
      for (const Value& item : iterate(v)) {
        Value x = attribute_path(item, to_str(attr));
        out.push_back(x.is(K::Undefined) && !dflt.is(K::Undefined) ? dflt : x);
      }
      return Value::list_of(std::move(out));
    }
    if (a.positional.empty() || !a.positional[0].is(K::String)) fail("map needs a filter name or attribute=");
    const std::string f = a.positional[0].s;
    if (!is_known_filter(f) || f == "map") fail("the filter '" + f + "' is not supported");
    for (const Value& item : iterate(v)) {
      CallArgs fa = rest(a, 1);
      out.push_back(apply_filter(f, item, fa));
    }
    return Value::list_of(std::move(out));
  }
  if (name == "list") return Value::list_of(iterate(v));
  if (name == "reverse") {
    if (v.is(K::String)) {
      std::vector<std::string> cps = code_points(v.s);
      std::string out;
      for (auto it = cps.rbegin(); it != cps.rend(); ++it) out += *it;
      return Value::string(out);
    }
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list_of(std::move(items));
  }
  if (name == "replace") {
    const Value from = arg(a, 0, "old"), to = arg(a, 1, "new"), n = arg(a, 2, "count", Value::none());
    return Value::string(
        replace(to_str(v), to_str(from), to_str(to), n.is(K::None) ? -1 : as_int(n, "replace(count)")));
  }
  if (name == "int") {
    if (v.is(K::Int)) return v;
    if (v.is(K::Bool)) return Value::integer(v.b);
    if (v.is(K::Float)) return Value::integer(int64_t(v.f));
    if (v.is(K::String)) {
      const std::string s = strip(v.s, Value::undefined(), true, true);
      char* end = nullptr;
      errno = 0;
      const long long x = std::strtoll(s.c_str(), &end, 10);
      if (!s.empty() && end && *end == 0 && errno == 0) return Value::integer(x);
    }
    return arg(a, 0, "default", Value::integer(0));
  }
  if (name == "float") {
    if (v.is_number()) return Value::floating(as_double(v));
    if (v.is(K::String)) {
      const std::string s = strip(v.s, Value::undefined(), true, true);
      char* end = nullptr;
      const double x = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == 0) return Value::floating(x);
    }
    return arg(a, 0, "default", Value::floating(0.0));
  }
  if (name == "abs") {
    if (v.is(K::Float)) return Value::floating(std::fabs(v.f));
    return Value::integer(std::llabs(as_int(v, "abs")));
  }
  if (name == "safe") return v;
  if (name == "unique") {
    List out;
    for (const Value& x : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); })) out.push_back(x);
    return Value::list_of(std::move(out));
  }
  if (name == "sort") {
    List items = iterate(v);
    const bool rev = truthy(arg(a, 0, "reverse", Value::boolean(false)));
    const Value attr = arg(a, 2, "attribute", Value::none());
    const auto key = [&](const Value& x) { return attr.is(K::None) ? x : attribute_path(x, to_str(attr)); };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return rev ? less_than(key(y), key(x)) : less_than(key(x), key(y));
    });
    return Value::list_of(std::move(items));
  }
  if (name == "sum") {
    Value acc = arg(a, 1, "start", Value::integer(0));
    for (const Value& x : iterate(v)) {
      if (!x.is_number() || !acc.is_number()) fail("sum needs numbers");
      acc = acc.is(K::Float) || x.is(K::Float) ? Value::floating(as_double(acc) + as_double(x))
                                               : Value::integer(as_int(acc, "sum") + as_int(x, "sum"));
    }
    return acc;
  }
  if (name == "min" || name == "max") {
    const List items = iterate(v);
    if (items.empty()) return Value::undefined();
    Value best = items[0];
    for (const Value& x : items)
      if (name == "min" ? less_than(x, best) : less_than(best, x)) best = x;
    return best;
  }
  fail("the filter '" + name + "' is not supported");
}

bool apply_test(const std::string& name, const Value& v, CallArgs& a) {
  if (name == "defined") return !v.is(K::Undefined);
  if (name == "undefined") return v.is(K::Undefined);
  if (name == "none") return v.is(K::None);
  if (name == "boolean") return v.is(K::Bool);
  if (name == "false") return v.is(K::Bool) && !v.b;
  if (name == "true") return v.is(K::Bool) && v.b;
  if (name == "integer") return v.is(K::Int);
  if (name == "float") return v.is(K::Float);
  if (name == "number") return v.is_number();
  if (name == "string") return v.is(K::String);
  if (name == "mapping") return v.is(K::Dict);
  if (name == "iterable") return v.is(K::Undefined) || v.is(K::String) || v.is(K::List) || v.is(K::Dict);
  if (name == "sequence") return v.is(K::Undefined) || v.is(K::String) || v.is(K::List) || v.is(K::Dict);
  if (name == "callable") return v.is(K::Function);
  if (name == "odd" || name == "even" || name == "divisibleby") {
    // jinja2: value % 2 == 1, value % 2 == 0, value % num == 0, with Python's % (floats too).
    const Value d = name == "divisibleby" ? arg(a, 0, "num") : Value::integer(2);
    if (!v.is_number() || !d.is_number()) fail(fmt::format("{} needs numbers, got {}", name, type_name(v)));
    if (as_double(d) == 0) fail(name + " by zero");
    double r;
    if (v.is(K::Float) || d.is(K::Float)) {
      r = std::fmod(as_double(v), as_double(d));
      if (r != 0 && ((r < 0) != (as_double(d) < 0))) r += as_double(d);
    } else {
      const int64_t x = as_int(v, "%"), y = as_int(d, "%");
      int64_t m = x % y;
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      r = double(m);
    }
    return name == "odd" ? r == 1 : r == 0;
  }
  const Value other = arg(a, 0, "other");
  if (name == "eq" || name == "equalto" || name == "==") return equal(v, other);
  if (name == "ne" || name == "!=") return !equal(v, other);
  if (name == "lt" || name == "<" || name == "lessthan") return less_than(v, other);
  if (name == "gt" || name == ">" || name == "greaterthan") return less_than(other, v);
  if (name == "le" || name == "<=") return !less_than(other, v);
  if (name == "ge" || name == ">=") return !less_than(v, other);
  if (name == "in") {
    const Value seq = arg(a, 0, "seq");
    if (seq.is(K::String)) {
      require_string(v, "'in <string>'");
      return seq.s.find(v.s) != std::string::npos;
    }
    if (seq.is(K::Dict)) return v.is(K::String) && seq.dict->find(v.s);
    for (const Value& x : iterate(seq))
      if (equal(x, v)) return true;
    return false;
  }
  if (name == "sameas") {
    if (v.kind != other.kind) return false;
    if (v.is(K::None) || v.is(K::Undefined)) return true;
    if (v.is(K::Bool)) return v.b == other.b;
    return false;
  }
  if (name == "lower" || name == "upper") {
    const std::string s = to_str(v);
    return s == (name == "lower" ? to_lower(s) : to_upper(s));
  }
  fail("the test '" + name + "' is not supported");
}

}  // namespace foldmoe::data::chat
