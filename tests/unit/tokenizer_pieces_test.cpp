// The pieces of the tokenizer.json implementation, each against what its specification says: the
// GPT-2 byte <-> character table, Unicode's "maximal subpart" rule for invalid UTF-8, BPE's
// lowest-rank-first merge order, HF's split behaviours and the added-token matching rules.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "data/tokenizers/added_tokens.h"
#include "data/tokenizers/bpe.h"
#include "data/tokenizers/regex.h"
#include "data/tokenizers/split.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {
namespace {

TEST(TokenizerPieces, ByteLevelTableIsGpt2s) {
  const ByteLevelTable& t = byte_level_table();
  // Printable bytes map to themselves; the others to U+0100 upwards in byte order:
  // 0x00 -> U+0100 'Ā', '\n' (0x0A) -> U+010A 'Ċ', ' ' (0x20) -> U+0120 'Ġ', 0x7F -> U+0121 'ġ',
  // 0xAD (soft hyphen) -> U+0143 'Ń' (the last one).
  EXPECT_EQ(t.byte_to_utf8['a'], "a");
  EXPECT_EQ(t.byte_to_utf8['!'], "!");
  EXPECT_EQ(t.byte_to_utf8[0xE9], "\u00E9");
  EXPECT_EQ(t.byte_to_utf8[0x00], "\u0100");
  EXPECT_EQ(t.byte_to_utf8['\n'], "\u010A");
  EXPECT_EQ(t.byte_to_utf8[' '], "\u0120");
  EXPECT_EQ(t.byte_to_utf8[0x7F], "\u0121");
  EXPECT_EQ(t.byte_to_utf8[0xAD], "\u0143");
  // A bijection onto 256 code points.
  int images = 0;
  for (int cp = 0; cp < 512; ++cp) images += t.code_point_to_byte[cp] >= 0;
  EXPECT_EQ(images, 256);
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    const char32_t cp = next_code_point(t.byte_to_utf8[b], i);
    EXPECT_EQ(t.code_point_to_byte[cp], b);
  }
}

TEST(TokenizerPieces, LossyUtf8ReplacesEachMaximalSubpart) {
  const std::string r = "\xEF\xBF\xBD";
  EXPECT_EQ(utf8_lossy("abc"), "abc");
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98"), r);            // a truncated 4-byte sequence: one U+FFFD
  EXPECT_EQ(utf8_lossy("\xC0\x80"), r + r);            // an overlong form: each byte
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), r + r + r);    // a surrogate: each byte
  EXPECT_EQ(utf8_lossy("a\xE6\x97x"), "a" + r + "x");  // 2 of 3 bytes, then ASCII
  EXPECT_EQ(utf8_lossy("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");
  EXPECT_TRUE(is_valid_utf8("h\xC3\xA9"));
  EXPECT_FALSE(is_valid_utf8("h\xC3"));
}

Vocab vocab_of(const std::vector<std::string>& tokens) {
  Vocab v;
  for (size_t i = 0; i < tokens.size(); ++i) v[tokens[i]] = int32_t(i);
  return v;
}

std::vector<int32_t> bpe_ids(const Bpe& bpe, const std::string& word) {
  std::vector<int32_t> out;
  bpe.tokenize(word, out);
  return out;
}

TEST(TokenizerPieces, BpeMergesTheLowestRankFirst) {
  //                    0    1    2    3     4     5
  const Vocab v = vocab_of({"a", "b", "c", "ab", "bc", "abc"});
  // "b c" ranks before "a b": "abc" -> a + bc, and no merge joins a and bc.
  const Bpe bc_first(v, {{"b", "c"}, {"a", "b"}, {"ab", "c"}}, {});
  EXPECT_EQ(bpe_ids(bc_first, "abc"), (std::vector<int32_t>{0, 4}));
  // The other order: ab first, then ab + c.
  const Bpe ab_first(v, {{"a", "b"}, {"b", "c"}, {"ab", "c"}}, {});
  EXPECT_EQ(bpe_ids(ab_first, "abc"), (std::vector<int32_t>{5}));
  // Equal pairs: the leftmost merges first ("bbb" with "b b": bb + b).
  const Bpe bb(vocab_of({"b", "bb"}), {{"b", "b"}}, {});
  EXPECT_EQ(bpe_ids(bb, "bbb"), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(bpe_ids(bb, "bbbb"), (std::vector<int32_t>{1, 1}));
  // The cached second call gives the same answer.
  EXPECT_EQ(bpe_ids(bb, "bbb"), (std::vector<int32_t>{1, 0}));
}

TEST(TokenizerPieces, BpeIgnoreMergesTakesAWholeWordFromTheVocabulary) {
  const Vocab v = vocab_of({"a", "b", "c", "ab", "abc"});
  BpeOptions o;
  // Without ignore_merges "abc" has no merge path to "abc" from "a b c" when only "a b" is ranked.
  const Bpe plain(v, {{"a", "b"}}, o);
  EXPECT_EQ(bpe_ids(plain, "abc"), (std::vector<int32_t>{3, 2}));
  o.ignore_merges = true;
  const Bpe direct(v, {{"a", "b"}}, o);
  EXPECT_EQ(bpe_ids(direct, "abc"), (std::vector<int32_t>{4}));
}

TEST(TokenizerPieces, BpeUnknownsAndByteFallback) {
  // 0 = <unk>, 1 = a, 2 = <0xC3>, 3 = <0xA9>
  const Vocab v = vocab_of({"<unk>", "a", "<0xC3>", "<0xA9>"});
  BpeOptions o;
  o.unk_token = "<unk>";
  const Bpe unfused(v, {}, o);
  EXPECT_EQ(bpe_ids(unfused, "axya"), (std::vector<int32_t>{1, 0, 0, 1}));
  o.fuse_unk = true;
  const Bpe fused(v, {}, o);
  EXPECT_EQ(bpe_ids(fused, "axya"), (std::vector<int32_t>{1, 0, 1}));
  o.byte_fallback = true;
  const Bpe bytes(v, {}, o);
  // 'é' is C3 A9: both byte tokens exist; 'ü' (C3 BC) lacks <0xBC>: unknown.
  EXPECT_EQ(bpe_ids(bytes, "a\xC3\xA9"), (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(bpe_ids(bytes, "\xC3\xBC"), (std::vector<int32_t>{0}));
  // Without an unknown token an unencodable character is dropped (as HF does).
  const Bpe none(v, {}, {});
  EXPECT_EQ(bpe_ids(none, "xay"), (std::vector<int32_t>{1}));
}

TEST(TokenizerPieces, BpeRefusesAMergeOutsideTheVocabulary) {
  EXPECT_THROW(Bpe(vocab_of({"a", "b"}), {{"a", "b"}}, {}), std::invalid_argument);
  EXPECT_THROW(Bpe(vocab_of({"a", "ab"}), {{"a", "z"}}, {}), std::invalid_argument);
}

std::vector<std::string> cut(const std::string& text, const std::string& pattern, SplitBehavior b,
                             bool invert = false) {
  const Regex re(pattern);
  std::vector<std::string> out;
  for (const auto& [s, e] : apply_behavior(spans_from_matches(text, re.find_all(text)), b, invert))
    out.push_back(text.substr(s, e - s));
  return out;
}

TEST(TokenizerPieces, SplitBehaviours) {
  using V = std::vector<std::string>;
  // The examples of HF's SplitDelimiterBehavior documentation ("the-final--countdown", '-').
  const std::string t = "the-final--countdown";
  EXPECT_EQ(cut(t, "-", SplitBehavior::Removed), (V{"the", "final", "countdown"}));
  EXPECT_EQ(cut(t, "-", SplitBehavior::Isolated), (V{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(cut(t, "-", SplitBehavior::MergedWithPrevious), (V{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(cut(t, "-", SplitBehavior::MergedWithNext), (V{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(cut(t, "-", SplitBehavior::Contiguous), (V{"the", "-", "final", "--", "countdown"}));
  // invert: the pattern names the pieces to keep.
  EXPECT_EQ(cut("a1b22", "[0-9]+", SplitBehavior::Removed, true), (V{"1", "22"}));
}

TEST(TokenizerPieces, RegexIsUnicodeAware) {
  const Regex re(R"(\p{L}+|\p{N}+|\s+)");
  const std::string text = "héllo 日本 ١٢٣";
  std::vector<std::string> parts;
  for (const auto& [b, e] : re.find_all(text)) parts.push_back(text.substr(b, e - b));
  EXPECT_EQ(parts, (std::vector<std::string>{"héllo", " ", "日本", " ", "١٢٣"}));
  EXPECT_THROW(Regex("(unclosed"), std::invalid_argument);
}

std::vector<std::string> added_split(const AddedTokenMatcher& m, const std::string& text) {
  std::vector<std::string> out;
  for (const Segment& s : m.split(text))
    out.push_back((s.token ? "#" + std::to_string(*s.token) + ":" : "") + text.substr(s.begin, s.end - s.begin));
  return out;
}

TEST(TokenizerPieces, AddedTokensLongestLeftmostAndStripFlags) {
  using V = std::vector<std::string>;
  AddedToken start{.id = 7, .content = "<|im_start|>"}, shorter{.id = 8, .content = "<|im"};
  AddedToken end{.id = 9, .content = "<|im_end|>", .lstrip = true, .rstrip = true};
  AddedToken word{.id = 10, .content = "cat", .single_word = true};
  const AddedTokenMatcher m({start, shorter, end, word}, {start.content, shorter.content, end.content, word.content});
  EXPECT_EQ(added_split(m, "a<|im_start|>b"), (V{"a", "#7:<|im_start|>", "b"}));
  EXPECT_EQ(added_split(m, "a<|imb"), (V{"a", "#8:<|im", "b"}));
  // lstrip/rstrip take the whitespace around the token into it.
  EXPECT_EQ(added_split(m, "x  <|im_end|> \ny"), (V{"x", "#9:  <|im_end|> \n", "y"}));
  // single_word: only where no word character touches it.
  EXPECT_EQ(added_split(m, "a cat sat"), (V{"a ", "#10:cat", " sat"}));
  EXPECT_EQ(added_split(m, "concatenate"), (V{"concatenate"}));
  EXPECT_EQ(added_split(m, ""), V{});
}

}  // namespace
}  // namespace foldmoe::data::tok
