#include "cli/commands.h"

#include <map>

#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/validate.h"
#include "core/check.h"

namespace foldmoe::cli {
namespace {
std::map<CLI::App*, std::function<int()>>& actions() {
  static std::map<CLI::App*, std::function<int()>> a;
  return a;
}
}  // namespace

void set_action(CLI::App* sub, std::function<int()> action) { actions()[sub] = std::move(action); }

int run_selected(CLI::App& app) {
  for (CLI::App* sub : app.get_subcommands())
    if (auto it = actions().find(sub); it != actions().end()) return it->second();
  return 1;
}

void ConfigOptions::add_to(CLI::App* sub) {
  sub->add_option("--config", file, "TOML config file (default: the built-in tiny MoE)");
  sub->allow_extras();
  sub->footer("Any config key can be set as --section.key=value (see `foldmoe config --keys`).");
}

Config ConfigOptions::load(CLI::App* sub) const {
  // Without a file the struct defaults are the built-in tiny MoE (config/config.h).
  Config c = file.empty() ? Config{} : load_config_file(file);
  std::vector<std::string> flags;
  for (const std::string& x : sub->remaining()) {
    if (x.rfind("--", 0) != 0 || x.find('=') == std::string::npos)
      user_error("unexpected argument '{}': config overrides are written --section.key=value", x);
    flags.push_back(x);
  }
  apply_overrides(c, flags);
  validate(c);
  return c;
}

}  // namespace foldmoe::cli
