#include "cli/commands.h"

#include <cstdio>
#include <map>

#include <fmt/format.h>

#include "cli/did_you_mean.h"
#include "cli/launch.h"
#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/validate.h"
#include "core/check.h"
#include "train/checkpoint_locator.h"

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

std::string checkpoint_argument(const std::string& arg, const std::string& what) {
  const std::string dir = train::locate_checkpoint(arg, what);
  if (dir != arg && launcher_rank() == 0)
    std::fprintf(stderr, "%s %s: its latest complete checkpoint is %s\n", what.c_str(), arg.c_str(), dir.c_str());
  return dir;
}

namespace {

// A word among the --section.key=value overrides that is not one: say what it looks like it meant.
[[noreturn]] void unexpected_argument(CLI::App* sub, const std::string& x, const std::string& next) {
  const std::string cmd = sub->get_name();
  if (x.rfind("--", 0) != 0)
    user_error(
        "`foldmoe {}` takes no argument '{}': config overrides are written --section.key=value; see "
        "`foldmoe {} --help`",
        cmd, x, cmd);
  if (x.find('.') != std::string::npos) {
    const std::string value = next.empty() || next.rfind("--", 0) == 0 ? "VALUE" : next;
    user_error("'{}' has no value: a config override is one word, --section.key=value.\n  fix: write {}={}", x, x,
               value);
  }
  std::vector<std::string> options;
  for (const CLI::Option* o : sub->get_options())
    for (const std::string& n : o->get_lnames()) options.push_back("--" + n);
  const std::string near = closest_word(x, options);
  user_error(
      "`foldmoe {}` has no option '{}'{}; config keys are set as --section.key=value (`foldmoe config --keys` "
      "lists them); see `foldmoe {} --help`",
      cmd, x, near.empty() ? "" : fmt::format(": did you mean {}?", near), cmd);
}

}  // namespace

void ConfigOptions::add_to(CLI::App* sub) {
  sub->add_option("--config", file, "TOML config file (default: the built-in tiny MoE)");
  sub->allow_extras();
  sub->footer("Any config key can be set as --section.key=value (see `foldmoe config --keys`).");
}

void add_profile_option(CLI::App* sub, std::shared_ptr<int> profile_step) {
  sub->add_flag("--profile{2}", *profile_step,
                "Write a Chrome trace of the N-th step this run executes (default 2) to "
                "<run_dir>/profile-step-S.json; same as --log.profile_step=N");
}

void apply_profile_option(Config& cfg, int profile_step) {
  if (profile_step > 0) cfg.log.profile_step = profile_step;
}

Config ConfigOptions::load(CLI::App* sub) const {
  // Without a file the struct defaults are the built-in tiny MoE (config/config.h).
  Config c = apply_config_flags(sub, file.empty() ? Config{} : load_config_file(file));
  validate(c);
  return c;
}

Config apply_config_flags(CLI::App* sub, Config c) {
  const std::vector<std::string> flags = sub->remaining();
  for (size_t i = 0; i < flags.size(); ++i)
    if (flags[i].rfind("--", 0) != 0 || flags[i].find('=') == std::string::npos)
      unexpected_argument(sub, flags[i], i + 1 < flags.size() ? flags[i + 1] : "");
  apply_overrides(c, flags);
  return c;
}

}  // namespace foldmoe::cli
