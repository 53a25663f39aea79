// The filters, tests, string/dict methods and global functions of the supported subset, with
// jinja2's (and Python's) semantics. They throw EvalError, which the evaluator turns into a K9
// error naming the template position.
#pragma once

#include <optional>
#include <string>

#include "data/chat_template/value.h"

namespace foldmoe::data::chat {

struct EvalError {
  std::string what;
};

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
std::string known_filters();
std::string known_tests();

Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);

// obj.name: a method bound to obj, a dict entry or namespace attribute, or undefined.
Value get_attr(const Value& obj, const std::string& name);
// obj[key] (lists and strings take negative indices); undefined where jinja2 gives undefined.
Value get_item(const Value& obj, const Value& key);
// The items a for loop or a filter iterates: list items, string code points, dict keys.
List iterate(const Value& v);
// Python's a < b for numbers, strings and lists.
bool less_than(const Value& a, const Value& b);
int64_t length_of(const Value& v);

// Argument helpers for functions: positional k or keyword `name`, else `fallback`.
Value arg(CallArgs& a, size_t k, const char* name, Value fallback = Value::undefined());

}  // namespace foldmoe::data::chat
