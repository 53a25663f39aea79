// Synthetic corpus: batches are pure functions of (seed, step), lines parse and their answers are
// right (recomputed here independently), tokens stay in the vocabulary, masks and task ids line up.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "core/check.h"
#include "data/synthetic.h"
#include "data/tokenizer.h"

using namespace foldmoe;
using namespace foldmoe::data;

namespace {

const std::vector<std::string> kAll = {"add", "reverse", "sort", "lookup"};

bool same_tensor(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         std::memcmp(const_cast<Tensor&>(a).raw(), const_cast<Tensor&>(b).raw(), a.nbytes()) == 0;
}

bool same_batch(const Batch& a, const Batch& b) {
  return same_tensor(a.tokens, b.tokens) && same_tensor(a.loss_mask, b.loss_mask) && same_tensor(a.task_ids, b.task_ids);
}

bool all_of_chars(const std::string& s, char lo, char hi) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) { return c >= lo && c <= hi; });
}

// Recomputes the answer of a full line "tag:question=answer" from the question alone and returns
// the task it belongs to. Fails the test on a malformed line.
Task check_line(const std::string& line) {
  const size_t colon = line.find(':');
  const size_t eq = line.rfind('=');
  EXPECT_NE(colon, std::string::npos) << line;
  EXPECT_NE(eq, std::string::npos) << line;
  const std::string tag = line.substr(0, colon);
  const std::string q = line.substr(colon + 1, eq - colon - 1);
  const std::string answer = line.substr(eq + 1);
  if (tag == "add") {
    const size_t plus = q.find('+');
    EXPECT_NE(plus, std::string::npos) << line;
    const std::string a = q.substr(0, plus), b = q.substr(plus + 1);
    EXPECT_TRUE(all_of_chars(a, '0', '9') && all_of_chars(b, '0', '9')) << line;
    EXPECT_LE(a.size(), 3u);
    EXPECT_LE(b.size(), 3u);
    EXPECT_FALSE(a.size() > 1 && a[0] == '0') << line;  // no leading zeros
    EXPECT_EQ(answer, std::to_string(std::stoi(a) + std::stoi(b))) << line;
    return Task::Add;
  }
  if (tag == "rev") {
    EXPECT_TRUE(all_of_chars(q, 'a', 'z')) << line;
    EXPECT_GE(q.size(), 3u);
    EXPECT_LE(q.size(), 6u);
    EXPECT_EQ(answer, std::string(q.rbegin(), q.rend())) << line;
    return Task::Reverse;
  }
  if (tag == "sort") {
    EXPECT_TRUE(all_of_chars(q, '0', '9')) << line;
    EXPECT_GE(q.size(), 3u);
    EXPECT_LE(q.size(), 6u);
    std::string s = q;
    std::sort(s.begin(), s.end());
    EXPECT_EQ(answer, s) << line;
    return Task::Sort;
  }
  EXPECT_EQ(tag, "kv") << line;
  // q = "a=3,b=7,c=1;b"
  const size_t semi = q.find(';');
  EXPECT_NE(semi, std::string::npos) << line;
  const std::string pairs = q.substr(0, semi), key = q.substr(semi + 1);
  std::map<std::string, std::string> kv;
  size_t start = 0;
  while (start <= pairs.size()) {
    const size_t comma = std::min(pairs.find(',', start), pairs.size());
    const std::string p = pairs.substr(start, comma - start);
    EXPECT_EQ(p.size(), 3u) << line;
    EXPECT_EQ(p[1], '=') << line;
    EXPECT_TRUE(kv.emplace(p.substr(0, 1), p.substr(2)).second) << "repeated key in " << line;
    start = comma + 1;
  }
  EXPECT_GE(kv.size(), 2u);
  EXPECT_LE(kv.size(), 5u);
  EXPECT_TRUE(kv.count(key)) << line;
  EXPECT_EQ(answer, kv[key]) << line;
  return Task::Lookup;
}

}  // namespace

TEST(Synthetic, Deterministic) {
  const SyntheticCorpus a(42, kAll), b(42, kAll), c(43, kAll);
  EXPECT_TRUE(same_batch(a.global_batch(7, 16, 64), b.global_batch(7, 16, 64)));
  EXPECT_FALSE(same_batch(a.global_batch(7, 16, 64), c.global_batch(7, 16, 64)));
  EXPECT_FALSE(same_batch(a.global_batch(7, 16, 64), a.global_batch(8, 16, 64)));
}

// Resuming at step k or asking in another order gives the same data: a batch depends only on
// (seed, step), and row i of a bigger batch equals row i of a smaller one.
TEST(Synthetic, IndependentOfCallOrderAndBatchSize) {
  const SyntheticCorpus fresh(5, kAll);
  const Batch direct = fresh.global_batch(100, 8, 48);
  const SyntheticCorpus used(5, kAll);
  for (int64_t s = 0; s < 100; s += 7) used.global_batch(s, 8, 48);
  EXPECT_TRUE(same_batch(used.global_batch(100, 8, 48), direct));
  const Batch big = fresh.global_batch(100, 32, 48);
  EXPECT_TRUE(same_batch(big.slice(0, 8), direct));
}

TEST(Synthetic, ShapesVocabMaskAndTaskIds) {
  const SyntheticCorpus corpus(1, kAll);
  const int gbs = 12, S = 64;
  const Batch b = corpus.global_batch(3, gbs, S);
  EXPECT_EQ(b.tokens.shape(), (Shape{gbs, S + 1}));
  EXPECT_EQ(b.tokens.dtype(), DType::I32);
  EXPECT_EQ(b.loss_mask.shape(), (Shape{gbs, S}));
  EXPECT_EQ(b.loss_mask.dtype(), DType::U8);
  EXPECT_EQ(b.task_ids.shape(), (Shape{gbs, S}));
  EXPECT_EQ(b.rows(), gbs);
  EXPECT_EQ(b.seq_len(), S);
  int64_t counted = 0;
  for (int r = 0; r < gbs; ++r) {
    const int32_t* tok = b.tokens.data<int32_t>() + r * (S + 1);
    const uint8_t* mask = b.loss_mask.data<uint8_t>() + r * S;
    const uint8_t* task = b.task_ids.data<uint8_t>() + r * S;
    EXPECT_EQ(tok[0], CharTokenizer::kBos);
    bool in_pad = false;
    for (int s = 0; s < S; ++s) {
      const int32_t target = tok[s + 1];
      ASSERT_GE(target, 0);
      ASSERT_LT(target, CharTokenizer::vocab_size());
      EXPECT_NE(target, CharTokenizer::kBos);
      if (target == CharTokenizer::kPad) in_pad = true;
      EXPECT_EQ(in_pad, target == CharTokenizer::kPad) << "padding only at the tail";
      EXPECT_EQ(mask[s], in_pad ? 0 : 1);
      EXPECT_EQ(task[s] == kNoTask, in_pad);
      if (!in_pad) {
        EXPECT_LT(task[s], kNumTasks);
      }
      counted += mask[s];
    }
    // Packing wastes less than one line at the tail.
    EXPECT_GT(std::count(mask, mask + S, uint8_t(1)), S - corpus.min_seq_len());
  }
  EXPECT_GT(counted, 0);
}

// Every packed line parses, its answer is right, and its tokens carry the line's task id.
TEST(Synthetic, LinesParseAndAnswersAreCorrect) {
  const SyntheticCorpus corpus(9, kAll);
  const int S = 64;
  std::map<Task, int> seen;
  for (int64_t step = 0; step < 20; ++step) {
    const Batch b = corpus.global_batch(step, 8, S);
    for (int r = 0; r < 8; ++r) {
      const int32_t* tok = b.tokens.data<int32_t>() + r * (S + 1);
      const uint8_t* task = b.task_ids.data<uint8_t>() + r * S;
      std::string line;
      std::vector<uint8_t> line_tasks;
      for (int s = 1; s <= S; ++s) {
        if (tok[s] == CharTokenizer::kPad) break;
        line_tasks.push_back(task[s - 1]);
        if (tok[s] == CharTokenizer::kEos) {
          const Task t = check_line(line);
          ++seen[t];
          for (uint8_t id : line_tasks) EXPECT_EQ(id, uint8_t(t)) << line;
          line.clear();
          line_tasks.clear();
        } else {
          line.push_back(CharTokenizer::id_to_char(tok[s]));
        }
      }
      EXPECT_TRUE(line.empty()) << "a line was cut: " << line;
    }
  }
  EXPECT_EQ(seen.size(), 4u);
  for (const auto& [t, n] : seen) EXPECT_GT(n, 100) << task_name(t);
}

TEST(Synthetic, TaskSelection) {
  const SyntheticCorpus only_sort(3, {"sort"});
  const Batch b = only_sort.global_batch(0, 4, 32);
  for (int64_t i = 0; i < b.task_ids.numel(); ++i) {
    const uint8_t t = b.task_ids.data<uint8_t>()[i];
    EXPECT_TRUE(t == uint8_t(Task::Sort) || t == kNoTask);
  }
  EXPECT_THROW(SyntheticCorpus(3, {"add", "multiply"}), UserError);
  EXPECT_THROW(SyntheticCorpus(3, {}), UserError);
  EXPECT_THROW(SyntheticCorpus(3, {"add", "add"}), UserError);
  EXPECT_EQ(SyntheticCorpus(3, {"lookup"}).min_seq_len(), 27);
  EXPECT_EQ(SyntheticCorpus(3, {"add"}).min_seq_len(), 17);
  EXPECT_THROW(SyntheticCorpus(3, {"lookup"}).global_batch(0, 2, 26), UserError);
  EXPECT_NO_THROW(SyntheticCorpus(3, {"lookup"}).global_batch(0, 2, 27));
}

TEST(Synthetic, EvalSetHeldOutAndCorrect) {
  const SyntheticCorpus corpus(11, kAll);
  for (const std::string& task : kAll) {
    const std::vector<TaskExample> ev = corpus.eval_set(task, 50);
    ASSERT_EQ(ev.size(), 50u);
    const std::vector<TaskExample> prefix = corpus.eval_set(task, 10);
    for (size_t i = 0; i < ev.size(); ++i) {
      EXPECT_EQ(ev[i].prompt.back(), '=');
      EXPECT_EQ(task_name(check_line(ev[i].prompt + ev[i].answer)), task);
      if (i < prefix.size()) {
        EXPECT_EQ(prefix[i].prompt, ev[i].prompt);
      }
    }
    // Examples vary (not one repeated draw).
    std::set<std::string> prompts;
    for (const auto& e : ev) prompts.insert(e.prompt);
    EXPECT_GT(prompts.size(), 25u) << task;
  }
  // Not the training stream: the first line of each training sequence at step 0 is not eval example i.
  const SyntheticCorpus single(11, {"reverse"});
  const Batch b = single.global_batch(0, 8, 32);
  const std::vector<TaskExample> ev = single.eval_set("reverse", 8);
  for (int r = 0; r < 8; ++r) {
    const int32_t* tok = b.tokens.data<int32_t>() + r * 33 + 1;
    std::string first;
    for (; *tok != CharTokenizer::kEos; ++tok) first.push_back(CharTokenizer::id_to_char(*tok));
    EXPECT_NE(first + "\n", ev[size_t(r)].line());
  }
}

TEST(Synthetic, ExactMatch) {
  const TaskExample ex{Task::Add, "add:12+345=", "357"};
  EXPECT_EQ(extract_answer("357\nadd:1+1=2"), "357");
  EXPECT_EQ(extract_answer("357"), "357");
  EXPECT_TRUE(exact_match(ex, "357\nrev:ab"));
  EXPECT_TRUE(exact_match(ex, "357"));
  EXPECT_FALSE(exact_match(ex, "3570\n"));
  EXPECT_FALSE(exact_match(ex, "35\n7"));
  EXPECT_FALSE(exact_match(ex, "\n357"));
  std::vector<int32_t> ids = CharTokenizer::encode("357");
  ids.push_back(CharTokenizer::kEos);
  for (int32_t id : CharTokenizer::encode("999")) ids.push_back(id);
  EXPECT_TRUE(exact_match(ex, ids));
  EXPECT_EQ(extract_answer(std::span<const int32_t>(ids)), "357");
  EXPECT_DOUBLE_EQ(exact_match_rate({ex, ex, ex, ex}, {"357\n", "358\n", "357", ""}), 0.5);
  EXPECT_DOUBLE_EQ(exact_match_rate({}, {}), 0.0);
}

// The word problem: parsed back from its text alone (name, start, then "verb n." steps whose sign
// comes from the verb), its answer must be the running totals, all non-negative.
TEST(Synthetic, WordProblemsParseAndTheirTotalsAreRight) {
  const SyntheticCorpus corpus(5, {"word"});
  const std::map<std::string, int> sign = {{"gets", 1}, {"buys", 1}, {"wins", 1},
                                           {"eats", -1}, {"uses", -1}, {"pays", -1}};
  const std::set<std::string> names = {"ann", "bob", "eve", "kim", "tom"};
  std::map<int, int> steps_seen;
  std::set<int> signs_seen;
  size_t longest = 0;
  for (const TaskExample& ex : corpus.eval_set("word", 500)) {
    ASSERT_EQ(ex.prompt.rfind("word:", 0), 0u) << ex.prompt;
    ASSERT_EQ(ex.prompt.back(), '=');
    // "ann has 7. gets 5. eats 9." -> sentences split on ". "
    std::string body = ex.prompt.substr(5, ex.prompt.size() - 7);  // drop "word:" and ".="
    std::vector<std::string> sentences;
    for (size_t start = 0;;) {
      const size_t dot = body.find(". ", start);
      sentences.push_back(body.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
      if (dot == std::string::npos) break;
      start = dot + 2;
    }
    ASSERT_GE(sentences.size(), 3u) << ex.prompt;
    const std::string& first = sentences[0];
    ASSERT_TRUE(names.count(first.substr(0, 3))) << ex.prompt;
    ASSERT_EQ(first.substr(3, 5), " has ") << ex.prompt;
    int total = std::stoi(first.substr(8));
    EXPECT_GE(total, 1);
    EXPECT_LE(total, 29);
    std::string totals;
    for (size_t i = 1; i < sentences.size(); ++i) {
      const std::string& s = sentences[i];
      ASSERT_EQ(s.size(), 6u) << ex.prompt;  // "verb n", one-digit n
      ASSERT_TRUE(sign.count(s.substr(0, 4))) << ex.prompt;
      const int v = s[5] - '0';
      EXPECT_GE(v, 1);
      EXPECT_LE(v, 9);
      total += sign.at(s.substr(0, 4)) * v;
      signs_seen.insert(sign.at(s.substr(0, 4)));
      EXPECT_GE(total, 0) << ex.prompt;
      totals += (i > 1 ? "," : "") + std::to_string(total);
    }
    ++steps_seen[int(sentences.size()) - 1];
    EXPECT_EQ(ex.answer, totals) << ex.prompt;
    EXPECT_EQ(chain_final_value(ex.answer), std::to_string(total));
    longest = std::max(longest, ex.line().size());
  }
  EXPECT_EQ(steps_seen.size(), 2u);  // 2 and 3 steps both occur
  EXPECT_EQ(steps_seen.begin()->first, 2);
  EXPECT_EQ(signs_seen.size(), 2u);  // gains and losses
  // The bound is tight enough to matter: real lines come close to it and never exceed it.
  EXPECT_LE(int(longest), max_line_tokens(Task::Word));
  EXPECT_GE(int(longest), max_line_tokens(Task::Word) - 3);
  EXPECT_EQ(SyntheticCorpus(3, {"word"}).min_seq_len(), max_line_tokens(Task::Word));
  EXPECT_EQ(task_from_name("word"), Task::Word);
  EXPECT_STREQ(task_tag(Task::Word), "word");
  // Training batches with the word task parse too, and carry its task id.
  const Batch b = SyntheticCorpus(9, {"word", "add"}).global_batch(0, 4, 64);
  std::set<int> ids;
  for (int64_t s = 0; s < 4 * 64; ++s) ids.insert(b.task_ids.data<uint8_t>()[s]);
  EXPECT_TRUE(ids.count(int(Task::Word)));
}
