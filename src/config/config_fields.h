// The one table of configuration fields. Each entry names a (section, key), its type, a one-line
// help text and accessors into Config. The TOML reader, the `--section.key=value` reader, the
// TOML writer, the generic value rules and the `--keys` listing all iterate this table; no other
// list of keys exists. static_asserts in config_fields.cpp fail the build when a struct of
// config.h or rl_section.h gains a member that the table lacks.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "config/config.h"

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
  DoublePair,  // two doubles written as a two-element list ([rl] optim.betas)
  Enum,        // an enum (or an optional one, "auto" = unset) spelled as a string
};

// How an enum-valued field reads and prints its spellings.
struct EnumCodec {
  bool (*parse)(std::string_view text, void* value);  // false: not a spelling of this enum
  std::string_view (*print)(const void* value);
  std::string (*choices)();  // "a | b | c"
};
struct EnumRef {
  void* value;
  const EnumCodec* codec;
};
struct ConstEnumRef {
  const void* value;
  const EnumCodec* codec;
};
struct DoublePairRef {
  double* first;
  double* second;
};
struct ConstDoublePairRef {
  const double* first;
  const double* second;
};

using FieldRef =
    std::variant<int*, int64_t*, double*, bool*, std::string*, std::optional<double>*, std::optional<int>*,
                 std::vector<int>*, std::vector<double>*, std::vector<std::string>*, DoublePairRef, EnumRef>;
using ConstFieldRef =
    std::variant<const int*, const int64_t*, const double*, const bool*, const std::string*,
                 const std::optional<double>*, const std::optional<int>*, const std::vector<int>*,
                 const std::vector<double>*, const std::vector<std::string>*, ConstDoublePairRef, ConstEnumRef>;

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
  // Runs right after the field is set (rl.preset applies its preset). A field with a hook is read
  // before the other keys of its TOML section, so that keys written in the file override it.
  void (*after_set)(Config&) = nullptr;

  std::string flag() const;  // "--section.key"
};

// Every field, grouped by section in config.h order.
std::span<const ConfigField> config_fields();
// The section names in table order.
std::vector<std::string_view> config_sections();
// nullptr if (section, key) is not a field.
const ConfigField* find_config_field(std::string_view section, std::string_view key);

// "integer", "float", "bool", "string", "float or none", ..., for messages and --keys; an enum
// field lists its spellings.
std::string field_type_name(const ConfigField& f);
// The field's value in c as TOML text (`none` for an unset optional; a one-element list of a
// scalar_as_list field as the scalar).
std::string field_value_toml(const ConfigField& f, const Config& c);
// The `--keys` listing: every flag with its type, default and help text, by section.
std::string config_help();

}  // namespace foldmoe
