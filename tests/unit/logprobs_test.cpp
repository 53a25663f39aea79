// `foldmoe logprobs` pieces: the JSON-lines readers and checks of data/sequence_input (rules E2–E6,
// file:line named), and score_sequences in one process against the teacher-forced whole-model
// forward (Model::forward_logits), for dense and MoE models and sequences of different lengths.
#include "train/logprobs.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

#include "core/check.h"
#include "data/data_source.h"
#include "data/sequence_input.h"
#include "data/text_tokenizer.h"
#include "data/tokenizer.h"
#include "rollout_test_util.h"

namespace foldmoe {
namespace {

std::string write_file(const std::string& name, const std::string& text) {
  const std::string path = ::testing::TempDir() + "logprobs_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

// The UserError message of f, or "" when it does not throw.
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(SequenceInput, ReadsTokenListsAndKeepsLineNumbers) {
  const std::string p = write_file("ok.jsonl", "[1, 2, 3]\n\n  \n[7, 0]\n[5,6,7,8]");
  const data::SequenceInput in = data::read_token_sequences(p);
  ASSERT_EQ(in.sequences.size(), 3u);
  EXPECT_EQ(in.sequences[0], (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(in.sequences[2], (std::vector<int32_t>{5, 6, 7, 8}));
  EXPECT_EQ(in.lines, (std::vector<int64_t>{1, 4, 5}));
  EXPECT_EQ(error_of([&] { data::check_sequences(in, 9, 4); }), "");
}

TEST(SequenceInput, MalformedLinesNameFileAndLine) {
  const auto e3 = [](const std::string& name, const std::string& text, const std::string& where) {
    const std::string p = write_file(name, text);
    const std::string msg = error_of([&] { data::read_token_sequences(p); });
    EXPECT_NE(msg.find("error E3:"), std::string::npos) << msg;
    EXPECT_NE(msg.find(p + ":" + where), std::string::npos) << msg;
  };
  e3("json.jsonl", "[1, 2]\n[3,\n", "2");
  e3("float.jsonl", "[1, 2.5]\n", "1");
  e3("string.jsonl", "[1, \"2\"]\n", "1");
  e3("object.jsonl", "[1, 2]\n[3, 4]\n{\"ids\": [1]}\n", "3");
  const std::string missing = error_of([] { data::read_token_sequences("/nonexistent/x.jsonl"); });
  EXPECT_NE(missing.find("error E2:"), std::string::npos) << missing;
  const std::string p = write_file("empty.jsonl", "\n\n");
  const std::string empty = error_of([&] { data::read_token_sequences(p); });
  EXPECT_NE(empty.find("error E2:"), std::string::npos) << empty;
  const std::string q = write_file("huge.jsonl", "[1, 99999999999999]\n");
  const std::string huge = error_of([&] { data::read_token_sequences(q); });
  EXPECT_NE(huge.find("error E4:"), std::string::npos) << huge;
}

TEST(SequenceInput, ChecksIdsLengthsAndContext) {
  const std::string p = write_file("bad.jsonl", "[1, 2]\n[1, 9]\n");
  const data::SequenceInput in = data::read_token_sequences(p);
  const std::string e4 = error_of([&] { data::check_sequences(in, 9, 100); });
  EXPECT_NE(e4.find("error E4:"), std::string::npos) << e4;
  EXPECT_NE(e4.find(p + ":2"), std::string::npos) << e4;
  const data::SequenceInput one = data::read_token_sequences(write_file("one.jsonl", "[1, 2]\n[3]\n"));
  EXPECT_NE(error_of([&] { data::check_sequences(one, 9, 100); }).find("error E5:"), std::string::npos);
  const data::SequenceInput none = data::read_token_sequences(write_file("none.jsonl", "[]\n"));
  EXPECT_NE(error_of([&] { data::check_sequences(none, 9, 100); }).find("error E5:"), std::string::npos);
  const data::SequenceInput lng = data::read_token_sequences(write_file("long.jsonl", "[1, 2, 3, 4, 5]\n"));
  const std::string e6 = error_of([&] { data::check_sequences(lng, 9, 4); });
  EXPECT_NE(e6.find("error E6:"), std::string::npos) << e6;
}

TEST(SequenceInput, TextLinesAreEncodedAsPrompts) {
  const std::unique_ptr<data::Tokenizer> tok = data::load_tokenizer("char");
  const std::string p = write_file("text.jsonl", "\"ab\"\n{\"text\": \"c\", \"id\": 3}\n");
  const data::SequenceInput in = data::read_text_sequences(p, data::CharTokenizer::kBos, *tok);
  ASSERT_EQ(in.sequences.size(), 2u);
  EXPECT_EQ(in.sequences[0], data::prompt_ids(data::CharTokenizer::kBos, *tok, "ab"));
  EXPECT_EQ(in.sequences[1].size(), 2u);
  const std::string q = write_file("textbad.jsonl", "\"ab\"\n[1, 2]\n");
  const std::string msg = error_of([&] { data::read_text_sequences(q, std::nullopt, *tok); });
  EXPECT_NE(msg.find("error E3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find(q + ":2"), std::string::npos) << msg;
}

class ScoreSequences : public ::testing::TestWithParam<std::string> {};

// log p(next token) and the logits equal log_softmax of the whole-model forward of each sequence.
TEST_P(ScoreSequences, EqualTheTeacherForcedForward) {
  const Config cfg = test::rollout_config(GetParam());
  Model m(cfg, ProcessGroups::single_process());
  const int64_t V = cfg.model.vocab;
  std::vector<std::vector<int32_t>> seqs;
  for (int64_t len : {2, 7, 13, 5}) seqs.push_back(test::random_tokens(len, V, uint64_t(len)));
  const std::vector<SequenceScores> got = score_sequences(m, ProcessGroups::single_process(), seqs, true);
  ASSERT_EQ(got.size(), seqs.size());
  for (size_t i = 0; i < seqs.size(); ++i) {
    const std::vector<int32_t>& s = seqs[i];
    const int64_t L = int64_t(s.size()) - 1;
    const std::vector<int32_t> inputs(s.begin(), s.end() - 1);
    const std::vector<float> ref = test::reference_logits(m, inputs);
    ASSERT_EQ(int64_t(got[i].logprobs.size()), L);
    ASSERT_EQ(int64_t(got[i].logits.size()), L * V);
    for (int64_t t = 0; t < L; ++t) {
      const float* row = ref.data() + t * V;
      double mx = row[0], sum = 0;
      for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(row[v]));
      for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v]) - mx);
      const double lp = double(row[s[size_t(t + 1)]]) - mx - std::log(sum);
      EXPECT_NEAR(got[i].logprobs[size_t(t)], lp, 1e-5 * std::max(1.0, std::abs(lp))) << "seq " << i << " t " << t;
      for (int64_t v = 0; v < V; ++v) EXPECT_EQ(got[i].logits[size_t(t * V + v)], row[v]);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, ScoreSequences, ::testing::Values("dense", "moe", "moe-sigmoid", "hf-qwen3"));

}  // namespace
}  // namespace foldmoe
