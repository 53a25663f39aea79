// Parses a chat template into its syntax tree. Anything outside the supported subset (an unknown
// statement, filter or test, a syntax error) is refused here, with its line and column (rule K9).
#pragma once

#include <string>
#include <string_view>

#include "data/chat_template/ast.h"

namespace foldmoe::data::chat {

Template parse_template(std::string_view source, const std::string& origin);

}  // namespace foldmoe::data::chat
