// "Did you mean" for command-line words (subcommands, option names): the closest candidate by
// edit distance (a swap of two neighbours counts as one edit), when close enough to be a typo.
#pragma once

#include <string>
#include <vector>

namespace foldmoe::cli {

// The candidate nearest to `word`, or "" when none is within max(2, |word| / 3) edits.
std::string closest_word(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace foldmoe::cli
