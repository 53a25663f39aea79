// The one table of configuration fields (DESIGN.md §3 rule 1). Each entry names a (section, key),
// its type, a one-line help text and accessors into Config. TOML parsing, `--section.key=value`
// overrides, the TOML dump and the `--help` listing all iterate this table; no other list of keys
// exists. A static_assert in config_fields.cpp fails the build when a struct in config.h gains a
// member that the table lacks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "model/config.h"

namespace foldmoe {

// The alternatives of FieldRef, in the same order (type == FieldType(ref.index())).
enum class FieldType {
  Int,
  Int64,
  Double,
  Bool,
  String,
  OptDouble,
  OptInt,
  IntList,
  DoubleList,
  StringList,
};

using FieldRef = std::variant<int*, int64_t*, double*, bool*, std::string*, std::optional<double>*,
                              std::optional<int>*, std::vector<int>*, std::vector<double>*,
                              std::vector<std::string>*>;
using ConstFieldRef =
    std::variant<const int*, const int64_t*, const double*, const bool*, const std::string*,
                 const std::optional<double>*, const std::optional<int>*, const std::vector<int>*,
                 const std::vector<double>*, const std::vector<std::string>*>;

struct ConfigField {
  std::string_view section;
  std::string_view key;
  std::string_view help;
  FieldType type;
  // A list field that also accepts a single scalar (`layer_freq = 2` == `[2]`); a one-element
  // value is written back as the scalar.
  bool scalar_as_list;
  FieldRef (*ref)(Config&);
  ConstFieldRef (*cref)(const Config&);

  std::string flag() const;  // "--section.key"
};

// Every field, grouped by section in config.h order.
std::span<const ConfigField> config_fields();
// The section names in table order.
std::vector<std::string_view> config_sections();
// nullptr if (section, key) is not a field.
const ConfigField* find_config_field(std::string_view section, std::string_view key);

// "integer", "float", "bool", "string", "float or none", ..., for messages and --help.
std::string_view field_type_name(FieldType t);
// The field's value in c as TOML text (`none` for an unset optional; a one-element list of a
// scalar_as_list field as the scalar).
std::string field_value_toml(const ConfigField& f, const Config& c);
// The `--help` listing: every flag with its type, default and help text, by section.
std::string config_help();

}  // namespace foldmoe
