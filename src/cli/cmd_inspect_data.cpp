// `foldmoe inspect-data`: what foldmoe reads from indexed datasets, as JSON on stdout: each
// dataset's header, document index and (with --sequences) tokens, and (with --seq-len) the GPT
// samples of a split. For checking data before a run, and for the tests that compare foldmoe's
// reading with megatron-core's.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "cli/option_checks.h"
#include "data/gpt_dataset.h"
#include "data/indexed_dataset.h"

namespace foldmoe::cli {
namespace {

struct InspectOptions {
  std::vector<std::string> data;
  std::vector<double> weights;
  std::string split = "969,30,1", which = "train", cache_dir;
  int seq_len = 0;
  long long seed = 1234, first = 0, count = 0;
  bool sequences = false;
};

nlohmann::json describe_dataset(const std::string& prefix, bool with_tokens) {
  const data::IndexedDataset d = data::IndexedDataset::open(prefix);
  nlohmann::json j;
  j["prefix"] = prefix;
  j["dtype"] = data::token_dtype_name(d.dtype());
  j["num_sequences"] = d.num_sequences();
  j["num_documents"] = d.num_documents();
  j["num_tokens"] = d.num_tokens();
  j["fingerprint"] = d.fingerprint();
  j["document_indices"] = std::vector<int64_t>(d.document_indices().begin(), d.document_indices().end());
  std::vector<int32_t> lengths;
  for (int64_t s = 0; s < d.num_sequences(); ++s) lengths.push_back(d.sequence_length(s));
  j["sequence_lengths"] = lengths;
  if (d.num_tokens() > 0) j["max_token_id"] = d.max_token_id();
  if (with_tokens) {
    nlohmann::json seqs = nlohmann::json::array();
    for (int64_t s = 0; s < d.num_sequences(); ++s) {
      std::vector<int32_t> t(static_cast<size_t>(d.sequence_length(s)));
      d.read(s, 0, static_cast<int64_t>(t.size()), t.data());
      seqs.push_back(t);
    }
    j["sequences"] = std::move(seqs);
  }
  return j;
}

}  // namespace

void register_inspect_data(CLI::App& app) {
  CLI::App* sub = app.add_subcommand("inspect-data",
                                     "Print what foldmoe reads from indexed datasets (PREFIX.bin/.idx) "
                                     "and, with --seq-len, the GPT samples of a split, as JSON");
  auto o = std::make_shared<InspectOptions>();
  sub->add_option("--data", o->data, "Dataset prefix (repeat for a blend)")->required();
  sub->add_option("--weights", o->weights, "Blend weights, one per --data (default: by size)");
  sub->add_flag("--sequences", o->sequences, "Also print every sequence's tokens");
  sub->add_option("--seq-len", o->seq_len, "Print GPT samples of seq_len + 1 tokens")
      ->check(integer_at_least("--seq-len", 1, "1024"));
  sub->add_option("--split", o->split, "Train/valid/test split string (default 969,30,1)");
  sub->add_option("--which", o->which, "Split to sample: train, valid or test")
      ->check(one_of("--which", {"train", "valid", "test"}));
  sub->add_option("--seed", o->seed, "Shuffle seed (default 1234)")->check(any_integer("--seed", "1234"));
  sub->add_option("--first", o->first, "First sample index")->check(integer_at_least("--first", 0, "0", LLONG_MAX));
  sub->add_option("--count", o->count, "Number of samples to print")
      ->check(integer_at_least("--count", 0, "8", 1 << 24));
  sub->add_option("--cache-dir", o->cache_dir, "Folder for the GPT index cache (default: beside the data)");
  set_action(sub, [o] {
    nlohmann::json out;
    out["datasets"] = nlohmann::json::array();
    for (const std::string& p : o->data) out["datasets"].push_back(describe_dataset(p, o->sequences));
    if (o->seq_len > 0) {
      data::GptDatasetSpec spec{.paths = o->data,
                                .weights = o->weights,
                                .split = o->split,
                                .seq_len = o->seq_len,
                                .seed = static_cast<uint64_t>(o->seed),
                                .cache_dir = o->cache_dir};
      const data::Split split = o->which == "train"   ? data::Split::Train
                                : o->which == "valid" ? data::Split::Valid
                                                      : data::Split::Test;
      const data::GptDataset g(spec, split);
      nlohmann::json gj;
      gj["samples_per_epoch"] = g.samples_per_epoch();
      gj["fingerprint"] = g.fingerprint();
      gj["describe"] = g.describe();
      gj["weights"] = g.weights();
      nlohmann::json samples = nlohmann::json::array(), where = nlohmann::json::array();
      std::vector<int32_t> buf(static_cast<size_t>(o->seq_len) + 1);
      for (long long i = o->first; i < o->first + o->count; ++i) {
        g.sample(i, buf);
        samples.push_back(buf);
        const auto [d, j] = g.locate(i);
        where.push_back({d, j});
      }
      gj["samples"] = std::move(samples);
      gj["locate"] = std::move(where);
      out["gpt"] = std::move(gj);
    }
    std::printf("%s\n", out.dump().c_str());
    return 0;
  });
}

}  // namespace foldmoe::cli
