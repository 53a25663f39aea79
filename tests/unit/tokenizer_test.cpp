// Character tokenizer: fixed ids, round trip, and a clear error for characters outside the vocabulary.
#include "data/tokenizer.h"

#include <gtest/gtest.h>

#include <string>

#include "core/check.h"

using foldmoe::UserError;
using foldmoe::data::CharTokenizer;

TEST(Tokenizer, FixedIds) {
  EXPECT_EQ(CharTokenizer::vocab_size(), 98);
  EXPECT_EQ(CharTokenizer::char_to_id('\n'), CharTokenizer::kEos);
  EXPECT_EQ(CharTokenizer::char_to_id(' '), 3);
  EXPECT_EQ(CharTokenizer::char_to_id('0'), 19);
  EXPECT_EQ(CharTokenizer::char_to_id('a'), 68);
  EXPECT_EQ(CharTokenizer::char_to_id('~'), 97);
  EXPECT_EQ(CharTokenizer::token_name(0), "<pad>");
  EXPECT_EQ(CharTokenizer::token_name(1), "<bos>");
  EXPECT_EQ(CharTokenizer::token_name(2), "<eos>");
  EXPECT_EQ(CharTokenizer::token_name(68), "a");
}

TEST(Tokenizer, RoundTripTaskAlphabet) {
  const std::string text = "add:12+345=357\nkv:a=3,b=7;b=7\nsort:5183=1358\nx|y>z ? 0123456789\n";
  const std::vector<int32_t> ids = CharTokenizer::encode(text);
  ASSERT_EQ(ids.size(), text.size());
  for (int32_t id : ids) {
    EXPECT_GE(id, CharTokenizer::kEos);
    EXPECT_LT(id, CharTokenizer::vocab_size());
  }
  EXPECT_EQ(CharTokenizer::decode(ids), text);
  // <bos> and <pad> carry no text.
  std::vector<int32_t> framed = {CharTokenizer::kBos};
  framed.insert(framed.end(), ids.begin(), ids.end());
  framed.push_back(CharTokenizer::kPad);
  EXPECT_EQ(CharTokenizer::decode(framed), text);
}

TEST(Tokenizer, UnknownCharacterNamesIt) {
  try {
    CharTokenizer::encode("add:1+2=\t3");
    FAIL();
  } catch (const UserError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("0x09"), std::string::npos) << msg;
    EXPECT_NE(msg.find("position 8"), std::string::npos) << msg;
  }
  try {
    CharTokenizer::encode("caf\xc3\xa9");
    FAIL();
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("0xc3"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CharTokenizer::decode(std::vector<int32_t>{5, 98}), UserError);
  EXPECT_THROW(CharTokenizer::decode(std::vector<int32_t>{-1}), UserError);
}
