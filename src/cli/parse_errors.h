// CLI11 reports command-line mistakes with its own texts and exit codes (106 "A subcommand is
// required", 105 with an unreadable range). foldmoe turns each into a message that names the value,
// the rule and the fix, printed as every other user error with exit status 2.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace foldmoe::cli {

// Before parsing: a first word that is not a subcommand is a misspelt one (UserError with the
// closest command: "did you mean `train`?").
void check_command_word(CLI::App& app, int argc, char** argv);

// The foldmoe message for a parse error that is not a request for help or the version.
std::string explain_parse_error(CLI::App& app, const CLI::ParseError& e);

}  // namespace foldmoe::cli
