// The values a chat template computes with (docs/chat-templates.md): the Python objects jinja2 hands
// a template, reduced to what chat templates use. Lists and dicts are immutable (HF renders with
// jinja2's immutable sandbox), so they are shared; a namespace() is the one mutable object.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace foldmoe::data::chat {

struct Value;
using List = std::vector<Value>;
// Insertion-ordered, string keys (Python dicts keep insertion order; tojson prints in that order).
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

// Arguments of a call: positional, then keyword.
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};
using Function = std::function<Value(CallArgs&)>;

struct Value {
  enum class Kind { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Function };
  Kind kind = Kind::Undefined;
  bool b = false;
  bool tuple = false;  // a List that Python would hold as a tuple (prints as (a, b))
  int64_t i = 0;
  double f = 0;
  std::string s;  // String; for Undefined the name that was looked up; for Function its name
  std::shared_ptr<const List> list;
  std::shared_ptr<Dict> dict;  // Dict (never mutated after construction) or Namespace (mutable)
  std::shared_ptr<const Function> fn;

  static Value undefined(std::string name = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value floating(double v);
  static Value string(std::string v);
  static Value list_of(List v);
  static Value tuple_of(List v);
  static Value dict_of(Dict v);
  static Value function(std::string name, Function f);

  bool is(Kind k) const { return kind == k; }
  bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
  bool is_mapping() const { return kind == Kind::Dict || kind == Kind::Namespace; }
};

// Python's bool(), str(), repr() and ==.
bool truthy(const Value& v);
std::string to_str(const Value& v);
std::string repr(const Value& v);
bool equal(const Value& a, const Value& b);
// Python's name of the value's type, for error messages ("str", "list", "dict" ...).
std::string type_name(const Value& v);

// json.dumps(v, ensure_ascii=False, indent=indent (< 0: None), sort_keys=sort_keys), as HF's tojson.
std::string to_json(const Value& v, int indent = -1, bool sort_keys = false);
// From JSON (objects keep their key order).
Value from_json(const nlohmann::ordered_json& j);

// Code points of a UTF-8 string, and back (indexing and slicing strings count code points).
std::vector<std::string> code_points(std::string_view s);

}  // namespace foldmoe::data::chat
