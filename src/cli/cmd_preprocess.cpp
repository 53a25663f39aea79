// `foldmoe preprocess`: tokenises a text corpus into a Megatron indexed dataset (PREFIX.bin/.idx)
// that `[data] source = "indexed"` trains on and Megatron-LM reads (docs/data.md). Needs no MPI.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "data/preprocess.h"

namespace foldmoe::cli {

void register_preprocess(CLI::App& app) {
  CLI::App* sub =
      app.add_subcommand("preprocess",
                         "Tokenise text (JSON lines, plain text or one file per document; .gz too) into a Megatron "
                         "indexed dataset PREFIX.bin/PREFIX.idx");
  auto o = std::make_shared<data::PreprocessOptions>();
  auto doc = std::make_shared<std::string>("per-line");
  sub->add_option("--input", o->input,
                  "Input: a .jsonl/.txt file (or .gz); with --document per-file a folder or a file listing paths")
      ->required();
  sub->add_option("--input-format", o->input_format,
                  "jsonl (default: one JSON object a line) or text (one "
                  "document a non-blank line)")
      ->check(one_of("--input-format", {"jsonl", "text"}));
  sub->add_option("--document", *doc, "per-line (default) or per-file (every file is one document)")
      ->check(one_of("--document", {"per-line", "per-file"}));
  sub->add_option("--json-key", o->json_key, "JSON key holding the text (default: text)");
  sub->add_option("--tokenizer", o->tokenizer, "Tokenizer: \"char\" or a tokenizer file")->required();
  sub->add_option("--output-prefix", o->output_prefix, "Writes PREFIX.bin and PREFIX.idx")->required();
  sub->add_flag("--append-eod", o->append_eod, "Append the tokenizer's eos token to every document");
  sub->add_option("--workers", o->workers, "Tokenizing threads (default 1; the output does not depend on it)")
      ->check(integer_at_least("--workers", 1, "4", 1024));
  sub->add_flag("--skip-bad-lines", o->skip_bad_lines,
                "Drop (and count) lines that are not valid JSON/UTF-8, lack the key, or are empty");
  sub->add_flag("--overwrite", o->overwrite, "Replace an existing PREFIX.bin/.idx");
  sub->add_option("--progress", o->progress, "auto (a bar on a terminal, plain lines otherwise), on or off")
      ->check(one_of("--progress", {"auto", "on", "off"}));
  set_action(sub, [o, doc] {
    o->per_file = *doc == "per-file";
    data::preprocess(*o, stderr);
    return 0;
  });
}

}  // namespace foldmoe::cli
