// The tokenizer.json loader against broken files: thousands of mutations of two valid files
// (a byte-level one and a SentencePiece-style one) — wrong types, deleted keys, huge numbers, bad
// regexes, bad merges, truncated or corrupted text. Each must load or fail with a UserError (never
// a crash, another exception or a hang); a file that loads must encode and decode without one.
// Also runs under ASan (scripts/build.sh asan).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "core/check.h"
#include "data/text_tokenizer.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

json byte_level_seed() {
  json vocab = json::object();
  const auto& table = tok::byte_level_table();
  for (int b = 0; b < 256; ++b) vocab[table.byte_to_utf8[b]] = b;
  vocab["Ġt"] = 256, vocab["he"] = 257, vocab["Ġthe"] = 258, vocab["in"] = 259;
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 260},
         {"content", "<|im_start|>"},
         {"single_word", false},
         {"lstrip", false},
         {"rstrip", false},
         {"normalized", false},
         {"special", true}},
        {{"id", 261},
         {"content", "<|im_end|>"},
         {"single_word", false},
         {"lstrip", true},
         {"rstrip", true},
         {"normalized", false},
         {"special", true}},
        {{"id", 262},
         {"content", "word"},
         {"single_word", true},
         {"lstrip", false},
         {"rstrip", false},
         {"normalized", true},
         {"special", false}}}},
      {"normalizer", {{"type", "Sequence"}, {"normalizers", {{{"type", "NFC"}}, {{"type", "Lowercase"}}}}}},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         {{{"type", "Split"},
           {"pattern",
            {{"Regex", R"((?i:'s|'t)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s+(?!\S)|\s+)"}}},
           {"behavior", "Isolated"},
           {"invert", false}},
          {{"type", "Digits"}, {"individual_digits", true}},
          {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}}}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single",
         {{{"SpecialToken", {{"id", "<|im_start|>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"special_tokens",
         {{"<|im_start|>", {{"id", "<|im_start|>"}, {"ids", {260}}, {"tokens", {"<|im_start|>"}}}}}}}},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}},
          {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}},
          {{"type", "Replace"}, {"pattern", {{"String", "x"}}}, {"content", "y"}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", true},
        {"vocab", vocab},
        {"merges", {"Ġ t", json::array({"h", "e"}), "Ġt he", "i n"}}}}};
}

json metaspace_seed() {
  json vocab = {{"<unk>", 0}, {"<s>", 1}, {"</s>", 2}, {"▁", 3}, {"a", 4}, {"b", 5}, {"▁a", 6}, {"ab", 7}};
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = 8 + b;
  return {
      {"version", "1.0"},
      {"added_tokens",
       {{{"id", 1},
         {"content", "<s>"},
         {"single_word", false},
         {"lstrip", false},
         {"rstrip", false},
         {"normalized", false},
         {"special", true}}}},
      {"normalizer",
       {{"type", "Sequence"},
        {"normalizers",
         {{{"type", "Prepend"}, {"prepend", "▁"}},
          {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "▁"}}}}}},
      {"pre_tokenizer", {{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", false}}},
      {"post_processor", nullptr},
      {"decoder",
       {{"type", "Sequence"},
        {"decoders",
         {{{"type", "Metaspace"}, {"replacement", "▁"}, {"prepend_scheme", "first"}, {"split", true}},
          {{"type", "ByteFallback"}},
          {{"type", "Fuse"}}}}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", "<unk>"},
        {"fuse_unk", true},
        {"byte_fallback", true},
        {"vocab", vocab},
        {"merges", {"▁ a", "a b"}}}}};
}

// Every node of `j` (pointers into it), for picking one at random; with `skip_vocab` the hundreds of
// vocabulary entries do not crowd out the rest.
void collect(json& j, std::vector<json*>& out, bool skip_vocab) {
  out.push_back(&j);
  if (j.is_object())
    for (auto& [key, child] : j.items()) {
      if (key == "vocab" && skip_vocab)
        out.push_back(&child);
      else
        collect(child, out, skip_vocab);
    }
  else if (j.is_array())
    for (auto& child : j) collect(child, out, skip_vocab);
}

json odd_value(std::mt19937& rng) {
  static const std::vector<json> values = {nullptr,
                                           true,
                                           -1,
                                           0,
                                           1e300,
                                           json(18446744073709551615ull),
                                           json(int64_t(1) << 40),
                                           "",
                                           "(",
                                           "[",
                                           R"(\p{Xx})",
                                           std::string(300, 'x'),
                                           json::array(),
                                           json::object(),
                                           json::array({1, 2}),
                                           json({{"type", "Nope"}}),
                                           json({{"type", "WordPiece"}}),
                                           json({{"Regex", "(a+)+$"}}),
                                           json({{"String", ""}}),
                                           "a b c",
                                           "▁",
                                           2.5};
  return values[rng() % values.size()];
}

std::string mutate(const json& seed, std::mt19937& rng) {
  json j = seed;
  const int kind = int(rng() % 5);
  if (kind <= 2) {
    // Structural: replace a node, delete a key, or duplicate an array entry.
    for (int n = 1 + int(rng() % 3); n > 0; --n) {
      std::vector<json*> nodes;
      collect(j, nodes, rng() % 5 != 0);
      json* node = nodes[rng() % nodes.size()];
      if (kind == 1 && node->is_object() && !node->empty()) {
        auto it = node->begin();
        std::advance(it, rng() % node->size());
        node->erase(it.key());
      } else if (kind == 2 && node->is_array() && !node->empty()) {
        node->push_back((*node)[rng() % node->size()]);
      } else {
        *node = odd_value(rng);
      }
    }
    return j.dump();
  }
  std::string text = j.dump();
  if (kind == 3) return text.substr(0, rng() % text.size());                                   // truncated
  for (int n = 1 + int(rng() % 4); n > 0; --n) text[rng() % text.size()] = char(rng() % 256);  // corrupted bytes
  return text;
}

TEST(TokenizerJsonFuzz, EveryMutationLoadsOrIsAUserError) {
  const fs::path dir = fs::temp_directory_path() / ("foldmoe_tokfuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path file = dir / "tokenizer.json";
  std::mt19937 rng(20261206);
  const std::vector<json> seeds = {byte_level_seed(), metaspace_seed()};
  const std::string sample = "The word <|im_start|>isn't 12345 héllo 日本 😀 <|im_end|>  ab\r\n<s>\xFF";
  int loaded = 0, refused = 0;
  for (const json& seed : seeds) {
    // The seeds themselves load and round-trip.
    { std::ofstream(file, std::ios::binary) << seed.dump(); }
    ASSERT_NO_THROW(load_tokenizer(file.string())) << seed.dump();
  }
  for (int i = 0; i < 3000; ++i) {
    const std::string text = mutate(seeds[size_t(i) % seeds.size()], rng);
    { std::ofstream(file, std::ios::binary | std::ios::trunc) << text; }
    std::unique_ptr<Tokenizer> t;
    try {
      t = load_tokenizer(file.string());
    } catch (const UserError& e) {
      ++refused;
      EXPECT_NE(std::string(e.what()).find("tokenizer error K"), std::string::npos) << e.what();
      continue;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mutation " << i << " threw " << typeid(e).name() << ": " << e.what() << "\n" << text;
      continue;
    }
    ++loaded;
    try {
      const std::vector<int32_t> ids = t->encode(sample);
      (void)t->decode(ids);
      std::vector<int32_t> any;
      for (int k = 0; k < 20; ++k) any.push_back(int32_t(rng() % uint32_t(t->vocab_size())));
      (void)t->decode(any);
    } catch (const UserError&) {
      // A mutated file may hold ids with holes, or a regex that gives up: a clear error is fine.
    } catch (const std::exception& e) {
      ADD_FAILURE() << "mutation " << i << " encode/decode threw " << e.what() << "\n" << text;
    }
  }
  fs::remove_all(dir);
  // Both outcomes happen: the mutations are neither all harmless nor all fatal.
  EXPECT_GT(loaded, 50);
  EXPECT_GT(refused, 1000);
}

}  // namespace
}  // namespace foldmoe::data
