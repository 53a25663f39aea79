#include "cli/parse_errors.h"

#include <regex>
#include <vector>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "cli/did_you_mean.h"
#include "core/check.h"

namespace foldmoe::cli {
namespace {

std::vector<std::string> command_names(CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; }))
    names.push_back(sub->get_name());
  return names;
}

std::string command_list(CLI::App& app) {
  return fmt::format("{}", fmt::join(command_names(app), ", "));
}

// The innermost subcommand that the parse reached, or null.
CLI::App* selected(CLI::App& app) {
  const std::vector<CLI::App*> subs = app.get_subcommands();
  return subs.empty() ? nullptr : subs.back();
}

std::vector<std::string> long_option_names(const CLI::App& sub) {
  std::vector<std::string> names;
  for (const CLI::Option* o : sub.get_options())
    for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
  return names;
}

std::string help_hint(const CLI::App* sub) {
  return sub ? fmt::format("see `foldmoe {} --help`", sub->get_name()) : "see `foldmoe --help`";
}

std::string missing_required(CLI::App& app, CLI::App* sub, const std::string& cli11_text) {
  if (sub == nullptr) {
    const std::vector<std::string> extras = app.remaining();
    const std::string unknown =
        extras.empty()
            ? ""
            : fmt::format("'{}' is not an option of foldmoe itself (those are --help and --version); ", extras.front());
    return fmt::format(
        "{}no command given: foldmoe runs one of its commands ({}).\n  fix: e.g. `foldmoe train`; "
        "`foldmoe --help` says what each command does",
        unknown, command_list(app));
  }
  for (const CLI::Option* o : sub->get_options())
    if (o->get_required() && o->count() == 0)
      return fmt::format("`foldmoe {}` needs {} ({}).\n  fix: add {} VALUE; {}", sub->get_name(), o->get_name(),
                         o->get_description(), o->get_name(), help_hint(sub));
  return fmt::format("{}; {}", cli11_text, help_hint(sub));
}

std::string unexpected(CLI::App& app, CLI::App* sub, const std::string& cli11_text) {
  const std::vector<std::string> extras = sub ? sub->remaining() : app.remaining();
  if (extras.empty()) return fmt::format("{}; {}", cli11_text, help_hint(sub));
  const std::string& first = extras.front();
  const std::string where = sub ? fmt::format("`foldmoe {}`", sub->get_name()) : "foldmoe";
  if (first.rfind("-", 0) != 0)
    return fmt::format("{} takes no argument '{}' (every value follows its option, e.g. --name VALUE); {}", where,
                       first, help_hint(sub));
  const std::string name = first.substr(0, first.find('='));
  const std::string near = sub ? closest_word(name, long_option_names(*sub)) : "";
  return fmt::format("{} has no option '{}'{}; {}", where, name,
                     near.empty() ? "" : fmt::format(": did you mean {}?", near), help_hint(sub));
}

// A value CLI11 could not convert (options with a foldmoe check never get here): in practice a flag
// given a value, e.g. --keys=maybe.
std::string bad_value(CLI::App* sub, const std::string& cli11_text) {
  std::smatch m;
  if (sub == nullptr || !std::regex_search(cli11_text, m, std::regex("Could not convert: (\\S+) = (.*)")))
    return fmt::format("{}; {}", cli11_text, help_hint(sub));
  const std::string name = m[1].str(), value = m[2].str();
  const CLI::Option* o = sub->get_option_no_throw(name);
  if (o != nullptr && (o->get_expected_min() == 0 || o->get_type_name().empty()))
    return fmt::format("{} is a flag and takes no value '{}'.\n  fix: write {} alone (or {}=true / {}=false)", name,
                       value, name, name, name);
  return fmt::format("{} cannot take the value '{}' (it expects {}); {}", name, value,
                     o ? o->get_type_name() : "another value", help_hint(sub));
}

std::string missing_value(CLI::App* sub, const std::string& cli11_text) {
  std::smatch m;
  // CLI11 words it "--x: 1 required INT missing" or "Expected exactly 1 arguments to --x, got 0".
  if (std::regex_search(cli11_text, m, std::regex("^(\\S+): \\d+ required .* missing$")) ||
      std::regex_search(cli11_text, m, std::regex("arguments? to (\\S+), got 0")))
    return fmt::format("{} needs a value (got none).\n  fix: write {} VALUE; {}", m[1].str(), m[1].str(),
                       help_hint(sub));
  return fmt::format("{}; {}", cli11_text, help_hint(sub));
}

}  // namespace

void check_command_word(CLI::App& app, int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') return;
  const std::string word = argv[1];
  const std::vector<std::string> names = command_names(app);
  for (const std::string& n : names)
    if (n == word) return;
  if (word == "help" || word == "version")
    user_error("'{}' is not a foldmoe command; did you mean `foldmoe --{}`?", word, word);
  const std::string near = closest_word(word, names);
  user_error("'{}' is not a foldmoe command{}\n  the commands are: {}; `foldmoe --help` says what each does", word,
             near.empty() ? "." : fmt::format("; did you mean `{}`?", near), command_list(app));
}

std::string explain_parse_error(CLI::App& app, const CLI::ParseError& e) {
  CLI::App* sub = selected(app);
  const std::string text = e.what();
  if (dynamic_cast<const CLI::RequiredError*>(&e)) return missing_required(app, sub, text);
  if (dynamic_cast<const CLI::ExtrasError*>(&e)) return unexpected(app, sub, text);
  if (dynamic_cast<const CLI::ArgumentMismatch*>(&e)) return missing_value(sub, text);
  if (dynamic_cast<const CLI::ConversionError*>(&e)) return bad_value(sub, text);
  // Conversion and validation errors of options without a foldmoe check (e.g. a flag's value).
  return fmt::format("{}; {}", text, help_hint(sub));
}

}  // namespace foldmoe::cli
