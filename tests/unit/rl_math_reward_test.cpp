// docs/rl.md §6.1–§6.3; worked example E14.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "rl/math_reward.h"

using namespace foldmoe::rl;

TEST(RlMathReward, E14ExtractionAndNormalisation) {
  struct Row {
    std::string response, truth, normalised;
    float score, score_numeric;
  };
  const std::string filler(300, 'x');
  const std::vector<Row> rows = {
      {"Let me think.\nso the total is 42.\nAnswer: 42", "42", "42", 1, 1},
      {"Answer: $42$", "42", "42", 1, 1},
      {"Answer: \\boxed{1,000}", "1000", "1000", 1, 1},
      {"Answer: x = 5", "5", "5", 1, 1},
      {"Answer: 10 degrees", "10", "10", 1, 1},
      {"Answer: 90^\\circ", "90", "90", 1, 1},
      {"Answer: 5 \\text{ cm}^2", "5", "5", 1, 1},
      {"Answer: 12 \\text{ inches}", "12", "12", 1, 1},
      {"Answer: \\frac12", "\\frac{1}{2}", "\\frac{1}{2}", 1, 1},
      {"Answer: \\sqrt2", "\\sqrt{2}", "\\sqrt{2}", 1, 1},
      {"Answer: \\text{(B)}", "(B)", "(B)", 1, 1},
      {"Answer: 1,234,567", "1234567", "1234567", 1, 1},
      {"answer:\n\n  17", "17", "17", 1, 1},
      {"Answer: 3\nWait, actually\nAnswer: 5", "5", "5", 1, 1},
      {"Answer: 3. Then Answer: 5", "5", "3.ThenAnswer:5", -1, -1},
      {"Answer: 42.", "42", "42.", -1, 1},
      {"Answer: $\\dfrac{1}{2}$", "\\frac{1}{2}", "\\dfrac{1}{2}", -1, 1},
      {"Answer: 0.5", "\\frac{1}{2}", "0.5", -1, 1},
      {"Answer: an integer 7", "7", "integer7", -1, -1},
      {"The final result is \\boxed{42}", "42", "[INVALID]", -1, -1},
      {"Answer: 7\n" + filler, "7", "[INVALID]", -1, -1},
  };
  for (const Row& r : rows) {
    const MathScore m = score_math_response(r.response, r.truth);
    EXPECT_EQ(m.prediction, r.normalised) << r.response;
    EXPECT_EQ(m.ground_truth, normalize_final_answer(r.truth)) << r.response;
    EXPECT_EQ(m.score, r.score) << r.response;
    EXPECT_EQ(m.acc, r.score > 0) << r.response;
    const MathScore n = score_math_response(r.response, r.truth, EquivalenceFallback::Numeric);
    EXPECT_EQ(n.score, r.score_numeric) << r.response;
  }
}

TEST(RlMathReward, ExtractionRules) {
  EXPECT_EQ(extract_answer("no answer here"), "[INVALID]");
  EXPECT_EQ(extract_answer("ANSWER : 12 apples\nmore"), "12 apples");
  EXPECT_EQ(extract_answer("Answer:\n\n  17"), "17");
  EXPECT_EQ(extract_answer("Answer: 3. Then Answer: 5"), "3. Then Answer: 5");
  EXPECT_EQ(extract_answer("Answer: 1\nAnswer: 2\n"), "2");
  // Backtracking of \s*: only whitespace after the colon, the capture takes a non-newline blank.
  EXPECT_EQ(extract_answer("Answer: \t\n"), "\t");
  EXPECT_EQ(extract_answer("Answer:\n"), "[INVALID]");
  // A trailing EOS string is removed first.
  EXPECT_EQ(extract_answer("Answer: 9</s>", "</s>"), "9");
  EXPECT_EQ(extract_answer("Answer: 9</s>"), "9</s>");
  // The 300-character window counts code points, not bytes.
  std::string tail;
  for (int i = 0; i < 290; ++i) tail += "\xC3\xA9";  // é, 2 bytes each
  EXPECT_EQ(extract_answer("Answer: 4\n" + tail), "4");   // 300 code points from the end include "4\n"
  EXPECT_EQ(extract_answer("Answer: 4\n" + tail + "xyz"), "[INVALID]");
  // Exactly at the window boundary.
  const std::string pad(290, 'y');
  EXPECT_EQ(extract_answer("Answer: 4\n" + pad), "4");  // "Answer: 4\n" is 10 chars: 300 in all
  EXPECT_EQ(extract_answer("Answer: 4\n" + pad + "z"), "[INVALID]");
}

TEST(RlMathReward, NormalisationSteps) {
  EXPECT_EQ(normalize_final_answer("a = b = 7"), "7");                       // N1
  EXPECT_EQ(normalize_final_answer("x \\text{and} y"), "x,y");              // N2 #9
  EXPECT_EQ(normalize_final_answer("3 \\text{and} 4"), "34");               // then N8 drops the comma
  EXPECT_EQ(normalize_final_answer("5 \\mbox{m}"), "5");                     // mbox → text, \text{m} → \text{}
  EXPECT_EQ(normalize_final_answer("integer"), "integer");                   // N3 is a substring deletion
  EXPECT_EQ(normalize_final_answer("$x$ and $y$"), "x");                     // N4
  EXPECT_EQ(normalize_final_answer("\\textbf{7}"), "7");                     // N5
  EXPECT_EQ(normalize_final_answer("\\overline{12}"), "12");
  EXPECT_EQ(normalize_final_answer("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}");  // boxed to the last }
  EXPECT_EQ(normalize_final_answer("\\frac1{2}"), "\\frac{1}{{}2}");        // frac a b with b = '{'
  EXPECT_EQ(normalize_final_answer("\\dfrac34"), "\\dfrac{3}{4}");
  EXPECT_EQ(normalize_final_answer("2\\sqrt3+\\sqrt{5}"), "2\\sqrt{3}+\\sqrt{5}");
  EXPECT_EQ(normalize_final_answer("1,2"), "12");                            // N8 (digits only)
  EXPECT_EQ(normalize_final_answer("(1,2)"), "(1,2)");
  EXPECT_EQ(normalize_final_answer("  \t"), "");
  EXPECT_EQ(normalize_final_answer("\"7\""), "7");
}

TEST(RlMathReward, NumericFallbackParser) {
  EXPECT_EQ(parse_rational("0.5"), (Rational{1, 2}));
  EXPECT_EQ(parse_rational("\\frac{1}{2}"), (Rational{1, 2}));
  EXPECT_EQ(parse_rational("\\tfrac{2}{4}"), (Rational{1, 2}));
  EXPECT_EQ(parse_rational("-\\dfrac{3}{6}"), (Rational{-1, 2}));
  EXPECT_EQ(parse_rational("6/-4"), (Rational{-3, 2}));
  EXPECT_EQ(parse_rational("42."), (Rational{42, 1}));
  EXPECT_EQ(parse_rational("+7"), (Rational{7, 1}));
  EXPECT_EQ(parse_rational("-0"), (Rational{0, 1}));
  EXPECT_FALSE(parse_rational("1/0"));
  EXPECT_FALSE(parse_rational("x"));
  EXPECT_FALSE(parse_rational(""));
  EXPECT_FALSE(parse_rational("."));
  EXPECT_FALSE(parse_rational("1.2.3"));
  EXPECT_FALSE(parse_rational("\\sqrt{2}"));
  EXPECT_FALSE(parse_rational("1234567890123456789"));  // more than 18 digits
  // Numeric never rescues an [INVALID] prediction.
  EXPECT_EQ(score_math_response("nothing", "7", EquivalenceFallback::Numeric).score, -1.0f);
}

TEST(RlMathReward, PromptTemplate) {
  EXPECT_EQ(dapo_math_prompt("What is 1+1?"),
            "Solve the following math problem step by step. The last line of your response should be of the form "
            "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\nWhat is 1+1?\n\n"
            "Remember to put your answer on its own line after \"Answer:\".");
}
