// A check of TOML text before toml++ reads it. toml++ 3.x assumes (TOML_ASSERT_ASSUME: an assert in
// debug builds, undefined behaviour in release builds) that a table header's '[' or '[[' is
// followed by a key; a line such as `[[[1]]]`, `[+x]` or a lone `[` breaks that assumption. Found by
// the config fuzz test (tests/unit/fuzz_config_test.cpp). Such a line is refused here as the TOML
// syntax error it is.
#pragma once

#include <string>

namespace foldmoe {

// UserError "<source>:<line>:<column>: TOML syntax error: ..." for the first line that starts (after
// spaces and tabs) with '[' or '[[' not followed by a key, a quoted key or ']'. A nested array
// written on lines of their own inside a multi-line array value is refused the same way; no
// configuration key takes one.
void check_table_headers(const std::string& text, const std::string& source);

}  // namespace foldmoe
