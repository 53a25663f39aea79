// `foldmoe config`: prints the resolved configuration (or every key with --keys).
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "config/toml_writer.h"
#include "config/config_fields.h"

namespace foldmoe::cli {

void register_config(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("config", "Print the resolved configuration as TOML");
  auto opts = std::make_shared<ConfigOptions>();
  auto keys = std::make_shared<bool>(false);
  opts->add_to(sub);
  sub->add_flag("--keys", *keys, "List every config key with its type, default and meaning");
  set_action(sub, [sub, opts, keys] {
    if (*keys) {
      std::fputs(config_help().c_str(), stdout);
      return 0;
    }
    std::fputs(config_to_toml(opts->load(sub)).c_str(), stdout);
    return 0;
  });
}

}  // namespace foldmoe::cli
