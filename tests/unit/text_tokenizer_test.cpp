// The tokenizer seam: the built-in character tokenizer behind load_tokenizer("char").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "data/text_tokenizer.h"

namespace foldmoe::data {
namespace {

TEST(TextTokenizer, CharSpecGivesTheBuiltInVocabulary) {
  const auto t = load_tokenizer("char");
  EXPECT_EQ(t->vocab_size(), 98);
  // ' ' = 3, 'a' = 68, '\n' = <eos> = 2 (the fixed table of data/tokenizer.h).
  EXPECT_EQ(t->encode("a a\n"), (std::vector<int32_t>{68, 3, 68, 2}));
  const std::vector<int32_t> ids = {1, 68, 3, 68, 2, 0};
  EXPECT_EQ(t->decode(ids), "a a\n");
  EXPECT_EQ(t->bos_id(), 1);
  EXPECT_EQ(t->eos_id(), 2);
  EXPECT_EQ(t->pad_id(), 0);
}

TEST(TextTokenizer, UnknownSpecIsAUserError) { EXPECT_THROW(load_tokenizer("gpt5"), UserError); }

}  // namespace
}  // namespace foldmoe::data
