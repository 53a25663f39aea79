// The sequences `foldmoe logprobs` scores, read from JSON-lines files (docs/logprobs.md §2), and the
// checks they pass before any model is built (rules E2–E6 of docs/rules.md).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/text_tokenizer.h"

namespace foldmoe::data {

struct SequenceInput {
  std::string path;
  std::vector<std::vector<int32_t>> sequences;
  std::vector<int64_t> lines;  // the 1-based line of each sequence in `path`
};

// Token ids: one JSON list of integers per line (blank lines are skipped). E2: the file cannot be
// read or holds no sequence; E3: a line is not JSON or not a list of integers (file:line named).
SequenceInput read_token_sequences(const std::string& path);
// Text: one JSON string per line, or an object {"text": string}; each is encoded as a prompt is
// (prompt_ids: the document-start token when the data has one, then the text). E2, E3 as above.
SequenceInput read_text_sequences(const std::string& path, std::optional<int32_t> document_start,
                                  const Tokenizer& tokenizer);

// E4: every id in [0, vocab); E5: at least 2 tokens (something to predict); E6: at most max_len
// tokens (the model's context). The first offending line is named.
void check_sequences(const SequenceInput& in, int64_t vocab, int64_t max_len);

}  // namespace foldmoe::data
