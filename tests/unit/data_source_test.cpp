// The DataSource seam: the synthetic source hands out exactly the corpus's batches, validation
// batches are fixed and never training batches, the indexed loss mask follows Megatron's
// eod_mask_loss rule, prompts and continuations go through the data's tokenizer, and every [data]
// / [eval] rule and the vocabulary check (D21) fire with their ids.
#include "data/data_source.h"

#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "config/data_rules.h"
#include "config/validate.h"
#include "core/check.h"
#include "data/gpt_dataset.h"
#include "data/indexed_dataset.h"
#include "data/indexed_source.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"
#include "indexed_data_util.h"
#include "train/trainer.h"

using namespace foldmoe;

namespace {

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(const_cast<Tensor&>(a).raw(), const_cast<Tensor&>(b).raw(), a.nbytes()) == 0;
}

bool same_batch(const data::Batch& a, const data::Batch& b) {
  return same_tensor(a.tokens, b.tokens) && same_tensor(a.loss_mask, b.loss_mask) &&
         same_tensor(a.task_ids, b.task_ids);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

// The rule ids config_problems reports for c.
std::vector<std::string> rule_ids(const Config& c) {
  std::vector<std::string> ids;
  const Problems problems = config_problems(c);
  for (const RuleViolation& v : problems.items()) ids.push_back(v.id);
  return ids;
}

bool has_rule(const Config& c, const std::string& id) {
  const std::vector<std::string> ids = rule_ids(c);
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

}  // namespace

TEST(SyntheticSource, TrainingBatchesAreTheCorpusBatches) {
  Config cfg;
  const auto src = data::make_data_source(cfg, true);
  const data::SyntheticCorpus corpus(uint64_t(cfg.train.seed), cfg.data.tasks);
  for (int64_t step : {0, 1, 17})
    EXPECT_TRUE(same_batch(src->global_batch(step, 6, 48), corpus.global_batch(step, 6, 48))) << step;
  ASSERT_NE(src->synthetic(), nullptr);
  EXPECT_EQ(src->tokenizer().vocab_size(), data::CharTokenizer::vocab_size());
  EXPECT_EQ(src->max_token_id(), data::CharTokenizer::vocab_size() - 1);
  EXPECT_EQ(src->document_start_id(), std::optional<int32_t>(data::CharTokenizer::kBos));
}

TEST(SyntheticSource, ValidationBatchesAreFixedAndNotTrainingBatches) {
  Config cfg;
  const auto a = data::make_data_source(cfg, true);
  const auto b = data::make_data_source(cfg, true);
  ASSERT_TRUE(a->has_validation());
  for (int64_t i : {0, 1, 2}) {
    EXPECT_TRUE(same_batch(a->validation_batch(i, 8, 48), b->validation_batch(i, 8, 48))) << i;
    for (int64_t step : {0, 1, 2})
      EXPECT_FALSE(same_batch(a->validation_batch(i, 8, 48), a->global_batch(step, 8, 48)));
  }
  EXPECT_FALSE(same_batch(a->validation_batch(0, 8, 48), a->validation_batch(1, 8, 48)));
}

TEST(SyntheticSource, FingerprintNamesTasksAndSeed) {
  Config cfg;
  const std::string f = data::make_data_source(cfg, false)->fingerprint();
  cfg.train.seed = 7;
  const std::string g = data::make_data_source(cfg, false)->fingerprint();
  cfg.train.seed = 1234;
  cfg.data.tasks = {"add"};
  const std::string h = data::make_data_source(cfg, false)->fingerprint();
  EXPECT_NE(f, g);
  EXPECT_NE(f, h);
  EXPECT_NE(f.find("add,reverse,sort,lookup"), std::string::npos) << f;
}

// Megatron (gpt_dataset.py, _get_ltor_masks_and_position_ids): loss_mask[tokens == eod] = 0 on the
// input tokens, so the position that reads the EOD (and would predict the next document's first
// token) has no loss; the EOD target itself keeps it.
TEST(IndexedLossMask, MasksPositionsWhoseInputIsTheEod) {
  const int32_t eod = 2;
  // Two rows of S+1 = 6 tokens; inputs are the first 5 of each.
  const std::vector<int32_t> tokens = {5, 2, 7, 8, 2, 9, /**/ 2, 2, 4, 4, 4, 2};
  std::vector<uint8_t> mask(10, 9);
  data::fill_indexed_loss_mask(tokens, 2, 5, /*eod_mask_loss=*/true, eod, mask);
  EXPECT_EQ(mask, (std::vector<uint8_t>{1, 0, 1, 1, 0, /**/ 0, 0, 1, 1, 1}));
  data::fill_indexed_loss_mask(tokens, 2, 5, /*eod_mask_loss=*/false, eod, mask);
  EXPECT_EQ(mask, std::vector<uint8_t>(10, 1));
}

TEST(DataText, PromptsStartWithTheDocumentStartAndContinuationsStopAtEos) {
  const auto tok = data::load_tokenizer("char");
  const std::vector<int32_t> ids = data::prompt_ids(tok->bos_id(), *tok, "ab");
  EXPECT_EQ(ids, (std::vector<int32_t>{data::CharTokenizer::kBos, data::CharTokenizer::char_to_id('a'),
                                       data::CharTokenizer::char_to_id('b')}));
  EXPECT_EQ(data::prompt_ids(std::nullopt, *tok, "a").size(), 1u);
  const std::vector<int32_t> cont = {data::CharTokenizer::char_to_id('4'), data::CharTokenizer::kPad,
                                     data::CharTokenizer::char_to_id('2'), data::CharTokenizer::kEos,
                                     data::CharTokenizer::char_to_id('9')};
  EXPECT_EQ(data::continuation_text(*tok, cont, '?'), "4?2");
  EXPECT_EQ(data::continuation_text(*tok, cont), "4<pad>2");
  Config cfg;
  EXPECT_EQ(data::document_start_id(cfg, *tok), tok->bos_id());
  cfg.data.source = "indexed";
  EXPECT_EQ(data::document_start_id(cfg, *tok), tok->eos_id());
}

TEST(DataRules, SplitStrings) {
  EXPECT_EQ(parse_data_split("969,30,1"), (std::array<double, 3>{969, 30, 1}));
  EXPECT_EQ(parse_data_split("98/2"), (std::array<double, 3>{98, 2, 0}));
  EXPECT_EQ(parse_data_split("1"), (std::array<double, 3>{1, 0, 0}));
  for (const char* bad : {"", "a,b,c", "1,2,3,4", "1,,2", "-1,2,0", "0,0,0", "1;2", "1,2,"})
    EXPECT_FALSE(parse_data_split(bad).has_value()) << bad;
}

TEST(DataRules, EveryBadValueHasItsRule) {
  Config ok;
  EXPECT_TRUE(config_problems(ok).empty());
  Config c;
  c.data.source = "indexed";
  EXPECT_TRUE(has_rule(c, "D8"));  // no paths
  c.data.paths = {"a", "b"};
  EXPECT_FALSE(has_rule(c, "D8"));
  c.data.weights = {1.0};
  EXPECT_TRUE(has_rule(c, "D9"));
  c.data.weights = {1.0, 0.0};
  EXPECT_TRUE(has_rule(c, "D9"));
  c.data.weights = {0.3, 0.7};
  EXPECT_FALSE(has_rule(c, "D9"));
  c.data.split = "90,x,1";
  EXPECT_TRUE(has_rule(c, "D7"));
  c.data.split = "100,0,0";
  EXPECT_FALSE(has_rule(c, "D7"));
  c.eval.interval = 10;
  EXPECT_TRUE(has_rule(c, "E1"));  // validation on, valid part empty
  c.data.split = "90,10,0";
  EXPECT_FALSE(has_rule(c, "E1"));
  c.eval.iters = 0;
  EXPECT_TRUE(has_rule(c, "V1"));
  c.eval.iters = 2;
  c.data.tokenizer = "";
  EXPECT_TRUE(has_rule(c, "D23"));
  c.data.tokenizer = "char";
  EXPECT_TRUE(config_problems(c).empty()) << config_problems(c).messages()[0];

  Config s;  // synthetic
  s.data.paths = {"x"};
  EXPECT_TRUE(has_rule(s, "D20"));
  s.data.paths.clear();
  s.data.eod_mask_loss = true;
  EXPECT_TRUE(has_rule(s, "D20"));
  s.data.eod_mask_loss = false;
  // A model's own tokenizer with the synthetic source is a valid config (an HF model's checkpoint
  // keeps it); reading the character-level corpus with it is refused where the source is made.
  s.data.tokenizer = "tok.model";
  EXPECT_FALSE(has_rule(s, "D20"));
  try {
    (void)data::make_data_source(s, false);
    ADD_FAILURE() << "the synthetic source accepted tokenizer = tok.model";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("D20"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("tok.model"), std::string::npos) << e.what();
  }
  s.data.tokenizer = "char";
  s.data.source = "webtext";
  EXPECT_TRUE(has_rule(s, "V3"));
}

TEST(DataRules, MissingFilesAreListedBeforeAnythingIsRead) {
  Config c;
  c.data.source = "indexed";
  c.data.paths = {"/nonexistent/corpus", "/nonexistent/other.bin"};
  const std::string e = error_of([&] { (void)data::make_data_source(c, false); });
  for (const char* part :
       {"D1", "/nonexistent/corpus.bin", "/nonexistent/corpus.idx", "/nonexistent/other.bin.idx", "without .bin/.idx"})
    EXPECT_NE(e.find(part), std::string::npos) << part << "\n" << e;
}

TEST(ResolveConfig, VocabularyComesFromTheDataAndMustCoverIt) {
  Config c;
  EXPECT_EQ(resolve_config(c).model.vocab, data::CharTokenizer::vocab_size());
  c.model.vocab = 200;
  EXPECT_EQ(resolve_config(c).model.vocab, 200);
  c.model.vocab = 50;
  const std::string e = error_of([&] { (void)resolve_config(c); });
  EXPECT_NE(e.find("D21"), std::string::npos) << e;
  EXPECT_NE(e.find("[model] vocab = 50"), std::string::npos) << e;
  EXPECT_NE(e.find("98"), std::string::npos) << e;
}

namespace {

// A dataset of `docs` documents of 5 tokens (3 characters, then <eos>): ids 3.. from `first`.
std::string write_dataset(const std::string& name, int docs, int32_t first) {
  const std::string prefix = data::testing::scratch_path(name);
  data::IndexedDatasetWriter w(prefix, data::TokenDType::UInt16);
  for (int d = 0; d < docs; ++d) {
    const std::vector<int32_t> doc = {first + d % 20, first + (d + 1) % 20, first + (d + 2) % 20,
                                      data::CharTokenizer::kEos};
    w.add_document(doc);
  }
  w.finalize();
  return prefix;
}

Config indexed_config(const std::string& prefix) {
  Config c;
  c.data.source = "indexed";
  c.data.paths = {prefix};
  c.data.split = "80,20,0";
  c.train.seq_len = 12;
  return c;
}

}  // namespace

// The indexed source's batches are GptDataset's samples in order: step k = train samples
// [k·gbs, (k+1)·gbs), validation batch i = valid samples [i·gbs, (i+1)·gbs); no task ids.
TEST(IndexedSource, BatchesAreConsecutiveSamplesOfTheSplits) {
  const Config c = indexed_config(write_dataset("seq", 200, 10));
  const auto src = data::make_data_source(c, true);
  data::GptDatasetSpec spec;
  spec.paths = c.data.paths;
  spec.split = c.data.split;
  spec.seq_len = 12;
  spec.seed = uint64_t(c.train.seed);
  const data::GptDataset train(spec, data::Split::Train), valid(spec, data::Split::Valid);
  const int gbs = 4;
  std::vector<int32_t> want(13);
  for (int64_t step : {0, 3}) {
    const data::Batch b = src->global_batch(step, gbs, 12);
    for (int r = 0; r < gbs; ++r) {
      train.sample(step * gbs + r, want);
      EXPECT_EQ(std::vector<int32_t>(b.tokens.data<int32_t>() + r * 13, b.tokens.data<int32_t>() + (r + 1) * 13), want);
    }
    EXPECT_EQ(b.valid_tokens(), gbs * 12);  // no eod_mask_loss: every target counts
    for (int64_t i = 0; i < gbs * 12; ++i) EXPECT_EQ(b.task_ids.data<uint8_t>()[i], data::kNoTask);
  }
  const data::Batch v = src->validation_batch(1, gbs, 12);
  valid.sample(gbs + 2, want);
  EXPECT_EQ(std::vector<int32_t>(v.tokens.data<int32_t>() + 2 * 13, v.tokens.data<int32_t>() + 3 * 13), want);
  EXPECT_EQ(src->max_token_id(), 29);
  EXPECT_EQ(src->document_start_id(), std::optional<int32_t>(data::CharTokenizer::kEos));
  EXPECT_EQ(resolve_config(c).model.vocab, data::CharTokenizer::vocab_size());
}

TEST(IndexedSource, EodMaskLossMasksEveryInputEod) {
  Config c = indexed_config(write_dataset("eod", 200, 10));
  c.data.eod_mask_loss = true;
  const auto src = data::make_data_source(c, false);
  const data::Batch b = src->global_batch(2, 6, 12);
  const int32_t* tok = b.tokens.data<int32_t>();
  const uint8_t* mask = b.loss_mask.data<uint8_t>();
  int64_t eods = 0;
  for (int r = 0; r < 6; ++r)
    for (int s = 0; s < 12; ++s) {
      const bool eod = tok[r * 13 + s] == data::CharTokenizer::kEos;
      eods += eod;
      EXPECT_EQ(mask[r * 12 + s], eod ? 0 : 1) << r << "," << s;
    }
  EXPECT_GT(eods, 0);
  EXPECT_EQ(b.valid_tokens(), 6 * 12 - eods);
}

TEST(IndexedSource, FingerprintChangesWithTheData) {
  const std::string a = write_dataset("fa", 200, 10), b = write_dataset("fb", 200, 11);
  Config c = indexed_config(a);
  const std::string fa = data::make_data_source(c, false)->fingerprint();
  EXPECT_NE(fa.find(a), std::string::npos) << fa;
  EXPECT_EQ(data::make_data_source(c, false)->fingerprint(), fa);
  c.data.paths = {b};
  EXPECT_NE(data::make_data_source(c, false)->fingerprint(), fa);
  c.data.paths = {a};
  c.data.split = "70,30,0";
  EXPECT_NE(data::make_data_source(c, false)->fingerprint(), fa);
  c.data.split = "80,20,0";
  c.train.seed = 9;
  EXPECT_NE(data::make_data_source(c, false)->fingerprint(), fa);
}

TEST(IndexedSource, TokenIdsAboveTheVocabularyAreRefused) {
  const std::string prefix = data::testing::scratch_path("big");
  data::IndexedDatasetWriter w(prefix, data::TokenDType::UInt16);
  for (int d = 0; d < 50; ++d) w.add_document(std::vector<int32_t>{5, 6, 150, 2});
  w.finalize();
  Config c = indexed_config(prefix);
  EXPECT_EQ(resolve_config(c).model.vocab, 151);
  c.model.vocab = 120;
  const std::string e = error_of([&] { (void)resolve_config(c); });
  EXPECT_NE(e.find("D21"), std::string::npos) << e;
  EXPECT_NE(e.find("token id 150"), std::string::npos) << e;
}
