// Typed access to a tokenizer.json with errors that name the file, the JSON path of the entry
// (`model.merges[12]`), what was expected and the rule id, so a broken or unsupported file is a
// clear UserError and never a crash.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace foldmoe::data::tok {

using json = nlohmann::json;

class JsonReader {
 public:
  explicit JsonReader(std::string file) : file_(std::move(file)) {}
  const std::string& file() const { return file_; }

  // UserError "tokenizer error <rule>: <file>: <path>: <what>\n  fix: <fix>".
  [[noreturn]] void fail(const char* rule, const std::string& path, const std::string& what,
                         const std::string& fix) const;
  // Rule K4: the entry has the wrong JSON type.
  [[noreturn]] void wrong_type(const std::string& path, const json& j, const char* expected) const;

  // Members of an object; absent and null are the same ("not set").
  const json* find(const json& obj, const std::string& path, const char* key) const;
  const json& require(const json& obj, const std::string& path, const char* key) const;

  std::string string(const json& j, const std::string& path) const;
  bool boolean(const json& j, const std::string& path) const;
  // An integer in [lo, hi].
  int64_t integer(const json& j, const std::string& path, int64_t lo, int64_t hi) const;
  const json& array(const json& j, const std::string& path) const;
  const json& object(const json& j, const std::string& path) const;

  std::optional<std::string> opt_string(const json& obj, const std::string& path, const char* key) const;
  bool opt_bool(const json& obj, const std::string& path, const char* key, bool dflt) const;

 private:
  std::string file_;
};

std::string join_path(const std::string& path, const char* key);
std::string join_path(const std::string& path, size_t index);

}  // namespace foldmoe::data::tok
