// The math reward of docs/rl.md §6: the `dapo-math` prompt template, `Answer:` extraction from the
// last 300 characters, Minerva-style normalisation (N1–N9) of prediction and ground truth, exact
// string comparison, the optional `numeric` equivalence fallback, and the ±1 score.
//
// Strings are UTF-8; "characters" are Unicode code points (the 300-character window, the
// characters of the shorthand rules N6, whitespace for `\s` and for the final strip).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/rl_section.h"

namespace foldmoe::rl {

inline constexpr std::string_view kInvalidAnswer = "[INVALID]";
inline constexpr size_t kAnswerWindowChars = 300;

// The `dapo-math` user turn (docs/rl.md §6.1), before the model's chat template.
std::string dapo_math_prompt(std::string_view problem);

// docs/rl.md §6.2: strip a trailing EOS string (if eos is non-empty and the text ends with it), keep the last
// 300 code points, capture of the last match of (?i)Answer\s*:\s*([^\n]+); "[INVALID]" if none.
std::string extract_answer(std::string_view response, std::string_view eos = {});

// docs/rl.md §6.3, N1–N9, applied to predictions and ground truths alike.
std::string normalize_final_answer(std::string_view answer);

// The `numeric` fallback's parser: optional sign, then an integer or decimal (digits with at most
// one '.', at least one digit), `a/b`, or `\frac{a}{b}` / `\dfrac{a}{b}` / `\tfrac{a}{b}` with a, b
// integers or decimals (each may carry a sign). Reduced, denominator > 0. nullopt if it does not
// parse, has a zero denominator, or needs more than 18 digits per number.
struct Rational {
  __int128 num = 0;
  __int128 den = 1;
  bool operator==(const Rational&) const = default;
};
std::optional<Rational> parse_rational(std::string_view s);

struct MathScore {
  float score = -1.0f;  // +1 correct, −1 otherwise
  bool acc = false;
  std::string prediction;    // normalised prediction
  std::string ground_truth;  // normalised ground truth
};
MathScore score_math_response(std::string_view response, std::string_view ground_truth,
                              EquivalenceFallback fallback = EquivalenceFallback::None, std::string_view eos = {});

}  // namespace foldmoe::rl
