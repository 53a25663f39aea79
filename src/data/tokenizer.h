// Character-level tokenizer with a fixed vocabulary (no training, no files): every synthetic task
// line is plain ASCII, so one id per character keeps the data pipeline, the reference dumps and
// the RL answer checks trivially inspectable.
//
// Vocabulary (98 ids, fixed forever: checkpoints and reference dumps depend on it):
//   0 = <pad>   fills the tail of a packed sequence; never a loss target
//   1 = <bos>   first token of every sequence
//   2 = <eos>   ends a line; the text form of <eos> is '\n'
//   3 + (c - ' ')  for every printable ASCII character c in ' ' .. '~'
//                  (so ' ' = 3, '0'..'9' = 19..28, 'a'..'z' = 68..93)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace foldmoe::data {

class CharTokenizer {
 public:
  static constexpr int32_t kPad = 0;
  static constexpr int32_t kBos = 1;
  static constexpr int32_t kEos = 2;
  static constexpr int32_t kFirstChar = 3;
  static constexpr char kLowChar = ' ', kHighChar = '~';
  static constexpr int32_t kVocabSize = kFirstChar + (kHighChar - kLowChar + 1);  // 98

  static constexpr int32_t vocab_size() { return kVocabSize; }

  // Id of one character; '\n' maps to <eos>. UserError naming the character otherwise.
  static int32_t char_to_id(char c);
  // '\n' for <eos>; UserError for <pad>, <bos> or an id outside the vocabulary.
  static char id_to_char(int32_t id);

  // Text -> ids, '\n' -> <eos>. No <bos> is added. An unknown character raises UserError naming
  // the character, its code and its position.
  static std::vector<int32_t> encode(std::string_view text);
  // Ids -> text: <eos> becomes '\n', <pad> and <bos> are dropped. An id outside the vocabulary
  // raises UserError.
  static std::string decode(std::span<const int32_t> ids);
  // A readable name for any id, for logs: "<pad>", "<bos>", "<eos>" or the character.
  static std::string token_name(int32_t id);
};

}  // namespace foldmoe::data
