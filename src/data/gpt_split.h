// Megatron's train/valid/test split string: up to three non-negative numbers separated by ',' or
// '/' ("969,30,1", "99/1", "1"), missing ones 0, normalised to fractions w_k / sum. Split k covers
// sequences [round(c_k * S), round(c_{k+1} * S)) with c the cumulative fractions (0, f0, f0 + f1,
// f0 + f1 + f2) and round() rounding half to even, as Python's round does.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace foldmoe::data {

// Fractions of the three splits. UserError (rule D7) for a string that does not parse, has more
// than three parts, a negative part or sums to 0; `where` names its origin in the message.
std::array<double, 3> parse_split(const std::string& split, const std::string& where);

struct SequenceRange {
  int64_t begin = 0, end = 0;
  int64_t size() const { return end - begin; }
};

// Sequences of split k (0 train, 1 valid, 2 test) in a dataset of `num_sequences`.
SequenceRange split_range(const std::array<double, 3>& fractions, int k, int64_t num_sequences);

}  // namespace foldmoe::data
