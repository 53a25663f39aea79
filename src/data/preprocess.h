// `foldmoe preprocess`: text (JSON lines, plain text, or one file per document; gzip or not) ->
// a Megatron indexed dataset PREFIX.bin/PREFIX.idx, one sequence per document, as Megatron's
// tools/preprocess_data.py writes it (uint16 tokens for vocabularies under 65500, else int32; the
// eos id appended to every document with --append-eod).
//
// Worker threads tokenise chunks of documents; the writer takes the chunks in input order, so the
// output is the same for any number of workers. The files are written under temporary names and
// renamed at the end: an interrupted run leaves no half-written pair, and an existing pair is
// replaced only with `overwrite`.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>

namespace foldmoe::data {

struct PreprocessOptions {
  std::string input;                   // file, or (per_file) a folder or a list of paths
  std::string input_format = "jsonl";  // "jsonl" or "text"
  bool per_file = false;               // one document per file instead of per line
  std::string json_key = "text";
  std::string tokenizer;  // a load_tokenizer spec
  std::string output_prefix;
  bool append_eod = false;
  int workers = 1;
  bool skip_bad_lines = false;
  bool overwrite = false;
  std::string progress = "auto";  // "auto" (a bar on a terminal, lines otherwise), "on", "off"
};

struct PreprocessStats {
  int64_t documents = 0, tokens = 0, skipped = 0;
  uint64_t input_bytes = 0;  // uncompressed text read
  double seconds = 0;
};

// Checks the options (D12, D13, D14) before reading anything, then runs. Progress and the final
// line go to `log`. UserError for bad input (D6, D11, D14) unless skip_bad_lines.
PreprocessStats preprocess(const PreprocessOptions& options, std::FILE* log);

class Tokenizer;
// The same with a tokenizer already loaded (options.tokenizer is then only named in messages).
PreprocessStats preprocess(const PreprocessOptions& options, const Tokenizer& tokenizer, std::FILE* log);

}  // namespace foldmoe::data
