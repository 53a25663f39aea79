// Renders a parsed chat template with jinja2's semantics: scoping (a for loop's body has its own
// scope, so templates carry state out of loops in a namespace()), `loop`, macros, break/continue.
#pragma once

#include <string>

#include "data/chat_template/ast.h"
#include "data/chat_template/value.h"

namespace foldmoe::data::chat {

// `variables` are the template's globals (messages, bos_token, ...); the built-in functions
// (namespace, range, raise_exception, strftime_now) are added. UserError K9 naming the template
// position for anything that fails, or the template's own raise_exception message.
std::string render_template(const Template& t, const Dict& variables);

}  // namespace foldmoe::data::chat
