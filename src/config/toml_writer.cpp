#include "config/toml_writer.h"

#include <fmt/format.h>

#include "config/config_fields.h"

namespace foldmoe {

std::string config_to_toml(const Config& c) {
  const Config defaults;
  std::string out = "# foldmoe resolved configuration (every key; `foldmoe config --keys` explains each)\n";
  std::string_view section;
  for (const ConfigField& f : config_fields()) {
    if (f.section != section) {
      section = f.section;
      out += fmt::format("\n[{}]\n", section);
    }
    const std::string value = field_value_toml(f, c);
    const bool optional = f.type == FieldType::OptDouble || f.type == FieldType::OptInt;
    if (optional && value == "none") {
      if (field_value_toml(f, defaults) == "none")
        out += fmt::format("# {} = (unset)  # {}\n", f.key, f.help);
      else
        out += fmt::format("{} = \"none\"  # {}\n", f.key, f.help);
      continue;
    }
    // An enum's comment lists its spellings, so that the file says what else may go there.
    if (f.type == FieldType::Enum)
      out += fmt::format("{} = {}  # {}: {}\n", f.key, value, f.help, field_type_name(f));
    else
      out += fmt::format("{} = {}  # {}\n", f.key, value, f.help);
  }
  return out;
}

}  // namespace foldmoe
