// A check of TOML text before toml++ reads it. toml++ 3.x (Debian 12 ships 3.3) has two inputs it
// reads with undefined behaviour (TOML_ASSERT_ASSUME / TOML_UNREACHABLE: an assert in debug builds,
// a __builtin_unreachable in release builds), both found by the config fuzz test
// (tests/unit/fuzz_config_test.cpp) under ASan/UBSan:
//  - a table header '[' or '[[' not followed by a key (`[[[1]]]`, `[+x]`, a lone `[`);
//  - a non-ASCII character where toml++ looks for whitespace, i.e. outside strings and comments
//    (its whitespace table has no answer for e.g. U+00E9).
// TOML allows neither, so both are refused here as the syntax errors they are; strings and
// comments keep any UTF-8 text (a run_dir "runs/été" is fine).
#pragma once

#include <string>

namespace foldmoe {

// UserError "<source>:<line>:<column>: TOML syntax error: ..." for the first such place.
void check_toml_text(const std::string& text, const std::string& source);

}  // namespace foldmoe
