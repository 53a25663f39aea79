#include "data/data_source.h"

#include <fmt/format.h>

#include "config/problems.h"
#include "data/indexed_source.h"
#include "data/synthetic_source.h"

namespace foldmoe::data {

std::unique_ptr<DataSource> make_data_source(const Config& cfg, bool with_validation) {
  if (cfg.data.source == "indexed") return std::make_unique<IndexedSource>(cfg, with_validation);
  if (cfg.data.tokenizer != "char") {
    Problems p;
    p.add("D20",
          fmt::format("[data] tokenizer = \"{}\" but the synthetic corpus (source = \"synthetic\") is character-level.",
                      clip_value_text(cfg.data.tokenizer)),
          "train or evaluate on data made with that tokenizer: set [data] source = \"indexed\" and paths = [...] "
          "(`foldmoe preprocess` writes them), or set [data] tokenizer = \"char\" for the synthetic corpus.");
    p.raise();
  }
  return std::make_unique<SyntheticSource>(uint64_t(cfg.train.seed), cfg.data.tasks);
}

std::optional<int32_t> document_start_id(const Config& cfg, const Tokenizer& tokenizer) {
  return cfg.data.source == "indexed" ? tokenizer.eos_id() : tokenizer.bos_id();
}

std::vector<int32_t> prompt_ids(std::optional<int32_t> document_start, const Tokenizer& tokenizer,
                                std::string_view text) {
  std::vector<int32_t> ids;
  if (document_start) ids.push_back(*document_start);
  for (int32_t t : tokenizer.encode(text)) ids.push_back(t);
  return ids;
}

std::string continuation_text(const Tokenizer& tokenizer, std::span<const int32_t> ids, std::optional<char> special) {
  const std::optional<int32_t> eos = tokenizer.eos_id(), bos = tokenizer.bos_id(), pad = tokenizer.pad_id();
  std::string text;
  std::vector<int32_t> run;  // ordinary ids waiting to be decoded together
  const auto flush = [&] {
    if (!run.empty()) text += tokenizer.decode(run);
    run.clear();
  };
  for (int32_t id : ids) {
    if (eos && id == *eos) break;
    if (id < 0 || id >= tokenizer.vocab_size() || (bos && id == *bos) || (pad && id == *pad)) {
      flush();
      text += special ? std::string(1, *special) : tokenizer.token_name(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return text;
}

}  // namespace foldmoe::data
