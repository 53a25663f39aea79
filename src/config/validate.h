// Checks a whole configuration before anything runs: every rule that holds whatever the world
// size (docs/rules.md lists each id). The layout rules that need the world size run when the
// process groups are made (config/layout_rules.h validate_layout); the [rl] rules when an RL run
// starts (config/rl_rules.h).
#pragma once

#include "config/config.h"
#include "config/problems.h"

namespace foldmoe {

// Every violation, in section order.
Problems config_problems(const Config& c);
// Throws one UserError listing every violation, each as
// "<config|layout> error <id>: <what>\n  fix: <fix>".
void validate(const Config& c);

}  // namespace foldmoe
