#include "data/tokenizers/json_reader.h"

#include <fmt/format.h>

#include "core/check.h"

namespace foldmoe::data::tok {
namespace {

std::string shown(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

}  // namespace

std::string join_path(const std::string& path, const char* key) {
  return path.empty() ? key : path + "." + key;
}
std::string join_path(const std::string& path, size_t index) {
  return fmt::format("{}[{}]", path, index);
}

void JsonReader::fail(const char* rule, const std::string& path, const std::string& what,
                      const std::string& fix) const {
  user_error("tokenizer error {}: {}: {}: {}\n  fix: {}", rule, file_, path.empty() ? "(top level)" : path, what, fix);
}

void JsonReader::wrong_type(const std::string& path, const json& j, const char* expected) const {
  fail("K4", path, fmt::format("expected {}, found {} {}", expected, j.type_name(), shown(j)),
       "repair the file (save it again with HF tokenizers' Tokenizer.save)");
}

const json* JsonReader::find(const json& obj, const std::string& path, const char* key) const {
  if (!obj.is_object()) wrong_type(path, obj, "an object");
  const auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

const json& JsonReader::require(const json& obj, const std::string& path, const char* key) const {
  const json* j = find(obj, path, key);
  if (!j)
    fail("K4", join_path(path, key), "is missing",
         "repair the file (save it again with HF tokenizers' Tokenizer.save)");
  return *j;
}

std::string JsonReader::string(const json& j, const std::string& path) const {
  if (!j.is_string()) wrong_type(path, j, "a string");
  return j.get<std::string>();
}

bool JsonReader::boolean(const json& j, const std::string& path) const {
  if (!j.is_boolean()) wrong_type(path, j, "true or false");
  return j.get<bool>();
}

int64_t JsonReader::integer(const json& j, const std::string& path, int64_t lo, int64_t hi) const {
  if (!j.is_number_integer()) wrong_type(path, j, "an integer");
  const bool negative = j.is_number_integer() && !j.is_number_unsigned() && j.get<int64_t>() < 0;
  if (!negative && j.is_number_unsigned() && j.get<uint64_t>() > uint64_t(hi))
    fail("K4", path, fmt::format("{} is above {}", shown(j), hi), "use a value in range");
  const int64_t v = j.get<int64_t>();
  if (v < lo || v > hi) fail("K4", path, fmt::format("{} is outside [{}, {}]", v, lo, hi), "use a value in range");
  return v;
}

const json& JsonReader::array(const json& j, const std::string& path) const {
  if (!j.is_array()) wrong_type(path, j, "an array");
  return j;
}

const json& JsonReader::object(const json& j, const std::string& path) const {
  if (!j.is_object()) wrong_type(path, j, "an object");
  return j;
}

std::optional<std::string> JsonReader::opt_string(const json& obj, const std::string& path, const char* key) const {
  const json* j = find(obj, path, key);
  if (!j) return std::nullopt;
  return string(*j, join_path(path, key));
}

bool JsonReader::opt_bool(const json& obj, const std::string& path, const char* key, bool dflt) const {
  const json* j = find(obj, path, key);
  return j ? boolean(*j, join_path(path, key)) : dflt;
}

}  // namespace foldmoe::data::tok
