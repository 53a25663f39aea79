#include "data/synthetic.h"

#include <algorithm>
#include <array>
#include <cstring>

#include "core/check.h"
#include "core/rng.h"
#include "data/tokenizer.h"

namespace foldmoe::data {

namespace {

// Generation sizes (the header's table): changing them changes every run's data.
constexpr int kAddMaxDigits = 3;
constexpr int kSeqMinLen = 3, kSeqMaxLen = 6;  // reverse and sort
constexpr int kKvMinPairs = 2, kKvMaxPairs = 5;
constexpr int kChainMinOperands = 3, kChainMaxOperands = 5;  // one-digit operands; totals in [-36, 45]
// Word problems: start 1..kWordMaxStart, then kWordMinSteps..kWordMaxSteps steps of 1..9; totals in
// [0, 56]. Measured on configs/rl-pretrain.toml with tasks add + word (greedy exact answers): start
// 1-49 with 2-4 steps 3% (too hard), start 1-9 with 2-3 steps 97.5% (too easy); 1-29 lies between. Sized so that configs/rl-pretrain.toml on add + word
// (experiments/rl_compare.py) leaves a start that solves part of them, far from all (docs/rl.md §7.2).
constexpr int kWordMaxStart = 29, kWordMinSteps = 2, kWordMaxSteps = 3;
constexpr std::array<const char*, 5> kWordNames = {"ann", "bob", "eve", "kim", "tom"};
constexpr std::array<const char*, 3> kWordGain = {"gets", "buys", "wins"};
constexpr std::array<const char*, 3> kWordLoss = {"eats", "uses", "pays"};
constexpr int kWordMaxTotal = kWordMaxStart + 9 * kWordMaxSteps;

constexpr std::array<Task, kNumTasks> kAllTasks = {Task::Add,    Task::Reverse, Task::Sort,
                                                   Task::Lookup, Task::Chain,   Task::Word};

// Independent RNG streams: one for training batches, one for evaluation sets.
constexpr std::string_view kTrainStream = "data.synthetic.train";
constexpr std::string_view kEvalStream = "data.synthetic.eval";
constexpr std::string_view kRlStream = "data.synthetic.rl";

// Sequential 32-bit draws from a counter-based stream: block b of item `item` is counter
// (item << 32 | b), so every item (a sequence, an eval example) has its own 2^32 blocks and can
// be produced without producing the others.
class Draws {
 public:
  Draws(const CounterRng& rng, uint64_t item) : rng_(rng), base_(item << 32) {}
  uint32_t next() {
    if (pos_ == 4) {
      block_ = rng_.bits(base_ + blocks_++);
      pos_ = 0;
    }
    return block_[size_t(pos_++)];
  }
  // Uniform integer in [lo, hi] (multiply-shift; the bias is below 2^-28 for these ranges).
  int uniform(int lo, int hi) { return lo + int((uint64_t(next()) * uint64_t(hi - lo + 1)) >> 32); }

 private:
  const CounterRng& rng_;
  uint64_t base_;
  uint64_t blocks_ = 0;
  Philox4 block_{};
  int pos_ = 4;
};

// 0..999 with the digit count uniform in 1..3, so short operands are as common as long ones.
int draw_operand(Draws& d) {
  const int digits = d.uniform(1, kAddMaxDigits);
  const int lo = digits == 1 ? 0 : (digits == 2 ? 10 : 100);
  const int hi = digits == 1 ? 9 : (digits == 2 ? 99 : 999);
  return d.uniform(lo, hi);
}

TaskExample generate(Task task, Draws& d) {
  TaskExample ex{task, std::string(task_tag(task)) + ":", ""};
  switch (task) {
    case Task::Add: {
      const int a = draw_operand(d), b = draw_operand(d);
      ex.prompt += fmt::format("{}+{}=", a, b);
      ex.answer = std::to_string(a + b);
      break;
    }
    case Task::Reverse: {
      std::string s(size_t(d.uniform(kSeqMinLen, kSeqMaxLen)), 'a');
      for (char& c : s) c = char('a' + d.uniform(0, 25));
      ex.prompt += s + "=";
      ex.answer.assign(s.rbegin(), s.rend());
      break;
    }
    case Task::Sort: {
      std::string s(size_t(d.uniform(kSeqMinLen, kSeqMaxLen)), '0');
      for (char& c : s) c = char('0' + d.uniform(0, 9));
      ex.prompt += s + "=";
      std::sort(s.begin(), s.end());
      ex.answer = s;
      break;
    }
    case Task::Lookup: {
      // Distinct keys by a partial Fisher-Yates shuffle of the alphabet.
      const int n = d.uniform(kKvMinPairs, kKvMaxPairs);
      std::string letters = "abcdefghijklmnopqrstuvwxyz";
      for (int i = 0; i < n; ++i) std::swap(letters[size_t(i)], letters[size_t(d.uniform(i, 25))]);
      std::string values(size_t(n), '0');
      for (char& v : values) v = char('0' + d.uniform(0, 9));
      for (int i = 0; i < n; ++i) ex.prompt += fmt::format("{}{}={}", i ? "," : "", letters[size_t(i)], values[size_t(i)]);
      const int q = d.uniform(0, n - 1);
      ex.prompt += fmt::format(";{}=", letters[size_t(q)]);
      ex.answer = std::string(1, values[size_t(q)]);
      break;
    }
    case Task::Chain: {
      const int n = d.uniform(kChainMinOperands, kChainMaxOperands);
      int total = d.uniform(0, 9);
      ex.prompt += std::to_string(total);
      for (int i = 1; i < n; ++i) {
        const bool plus = d.uniform(0, 1) == 1;
        const int v = d.uniform(0, 9);
        total += plus ? v : -v;
        ex.prompt += fmt::format("{}{}", plus ? '+' : '-', v);
        ex.answer += fmt::format("{}{}", i > 1 ? "," : "", total);
      }
      ex.prompt += "=";
      break;
    }
    case Task::Word: {
      int total = d.uniform(1, kWordMaxStart);
      ex.prompt += fmt::format("{} has {}.", kWordNames[size_t(d.uniform(0, int(kWordNames.size()) - 1))], total);
      const int n = d.uniform(kWordMinSteps, kWordMaxSteps);
      for (int i = 0; i < n; ++i) {
        const int v = d.uniform(1, 9);
        // A loss that would go below zero becomes a gain: counts of things stay non-negative.
        const bool gain = d.uniform(0, 1) == 1 || v > total;
        const auto& verbs = gain ? kWordGain : kWordLoss;
        total += gain ? v : -v;
        ex.prompt += fmt::format(" {} {}.", verbs[size_t(d.uniform(0, int(verbs.size()) - 1))], v);
        ex.answer += fmt::format("{}{}", i ? "," : "", total);
      }
      ex.prompt += "=";
      break;
    }
  }
  return ex;
}

}  // namespace

const char* task_name(Task t) {
  switch (t) {
    case Task::Add: return "add";
    case Task::Reverse: return "reverse";
    case Task::Sort: return "sort";
    case Task::Lookup: return "lookup";
    case Task::Chain: return "chain";
    case Task::Word: return "word";
  }
  return "?";
}

const char* task_tag(Task t) {
  switch (t) {
    case Task::Add: return "add";
    case Task::Reverse: return "rev";
    case Task::Sort: return "sort";
    case Task::Lookup: return "kv";
    case Task::Chain: return "chain";
    case Task::Word: return "word";
  }
  return "?";
}

Task task_from_name(std::string_view name) {
  for (Task t : kAllTasks)
    if (name == task_name(t)) return t;
  user_error("unknown synthetic task '{}' in data.tasks; valid tasks are add, reverse, sort, lookup, chain, word",
             name);
}

int max_line_tokens(Task t) {
  const int tag = int(std::strlen(task_tag(t))) + 1;  // "tag:"
  switch (t) {
    case Task::Add: return tag + 2 * kAddMaxDigits + 2 + (kAddMaxDigits + 1) + 1;  // a+b=sum\n
    case Task::Reverse:
    case Task::Sort: return tag + 2 * kSeqMaxLen + 1 + 1;                         // s=s'\n
    case Task::Lookup: return tag + 3 * kKvMaxPairs + (kKvMaxPairs - 1) + 4 + 1;   // pairs;k=v\n
    case Task::Chain: return tag + (2 * kChainMaxOperands - 1) + 1 + 3 * (kChainMaxOperands - 1) +
                             (kChainMaxOperands - 2) + 1;                                  // expr=t1,..,tn\n
    case Task::Word: {
      // "ann has 29." then " uses 9." per step, then "=", the totals joined by ",", "\n".
      const int start_digits = kWordMaxStart >= 10 ? 2 : 1, digits = kWordMaxTotal >= 10 ? 2 : 1;
      return tag + 3 + 5 + start_digits + 1 + 8 * kWordMaxSteps + 1 + (digits + 1) * kWordMaxSteps - 1 + 1;
    }
  }
  return 0;
}

SyntheticCorpus::SyntheticCorpus(uint64_t seed, std::vector<std::string> tasks) : seed_(seed) {
  if (tasks.empty()) user_error("data.tasks is empty; list at least one of add, reverse, sort, lookup, chain, word");
  for (const std::string& name : tasks) {
    const Task t = task_from_name(name);
    if (std::find(tasks_.begin(), tasks_.end(), t) != tasks_.end())
      user_error("task '{}' appears twice in data.tasks; list each task once", name);
    tasks_.push_back(t);
  }
}

int32_t SyntheticCorpus::vocab_size() { return CharTokenizer::vocab_size(); }

int SyntheticCorpus::min_seq_len() const {
  // S+1 tokens hold <bos> plus the line, so S = the line length suffices.
  int longest = 0;
  for (Task t : tasks_) longest = std::max(longest, max_line_tokens(t));
  return longest;
}

Batch SyntheticCorpus::global_batch(int64_t step, int gbs, int seq_len) const {
  FOLDMOE_CHECK(gbs > 0 && step >= 0, "global_batch(step={}, gbs={})", step, gbs);
  if (seq_len < min_seq_len())
    user_error("train.seq_len = {} is too short for the synthetic tasks: their longest line has {} tokens; set "
               "train.seq_len >= {}",
               seq_len, min_seq_len(), min_seq_len());
  const int64_t S = seq_len;
  Batch b{Tensor::zeros({gbs, S + 1}, DType::I32), Tensor::zeros({gbs, S}, DType::U8),
          Tensor::empty({gbs, S}, DType::U8)};
  std::fill(b.task_ids.data<uint8_t>(), b.task_ids.data<uint8_t>() + gbs * S, kNoTask);
  // Sub-stream = step: the batch of one step is independent of every other step's.
  const CounterRng rng(seed_, kTrainStream, uint64_t(step));
  for (int64_t row = 0; row < gbs; ++row) {
    int32_t* tok = b.tokens.data<int32_t>() + row * (S + 1);
    uint8_t* mask = b.loss_mask.data<uint8_t>() + row * S;
    uint8_t* task = b.task_ids.data<uint8_t>() + row * S;
    Draws d(rng, uint64_t(row));
    tok[0] = CharTokenizer::kBos;
    int64_t pos = 1;  // next free position
    for (;;) {
      const Task t = tasks_[size_t(d.uniform(0, int(tasks_.size()) - 1))];
      const std::vector<int32_t> ids = CharTokenizer::encode(generate(t, d).line());
      if (pos + int64_t(ids.size()) > S + 1) break;  // whole lines only; the rest stays <pad>
      for (int32_t id : ids) {
        tok[pos] = id;
        // Position pos is the target of input position pos - 1.
        mask[pos - 1] = 1;
        task[pos - 1] = uint8_t(t);
        ++pos;
      }
    }
  }
  return b;
}

std::vector<TaskExample> SyntheticCorpus::eval_set(const std::string& task, int count) const {
  const Task t = task_from_name(task);
  // Keyed by the task as well, so each task's evaluation set is fixed whatever else is selected.
  const CounterRng rng(seed_, kEvalStream, uint64_t(t));
  std::vector<TaskExample> out;
  out.reserve(size_t(std::max(count, 0)));
  for (int i = 0; i < count; ++i) {
    Draws d(rng, uint64_t(i));
    out.push_back(generate(t, d));
  }
  return out;
}

TaskExample SyntheticCorpus::rl_example(const std::string& task, uint64_t index) const {
  const Task t = task_from_name(task);
  const CounterRng rng(seed_, kRlStream, uint64_t(t));
  Draws d(rng, index);
  return generate(t, d);
}

std::string_view chain_final_value(std::string_view answer) {
  // Also the word task's: both list running totals, the final one last.
  const size_t comma = answer.rfind(',');
  return comma == std::string_view::npos ? answer : answer.substr(comma + 1);
}

std::string extract_answer(std::string_view continuation) {
  return std::string(continuation.substr(0, continuation.find('\n')));
}

std::string extract_answer(std::span<const int32_t> continuation_ids) {
  const auto end = std::find(continuation_ids.begin(), continuation_ids.end(), CharTokenizer::kEos);
  return CharTokenizer::decode(continuation_ids.subspan(0, size_t(end - continuation_ids.begin())));
}

bool exact_match(const TaskExample& ex, std::string_view continuation) {
  return extract_answer(continuation) == ex.answer;
}

bool exact_match(const TaskExample& ex, std::span<const int32_t> continuation_ids) {
  return extract_answer(continuation_ids) == ex.answer;
}

double exact_match_rate(const std::vector<TaskExample>& examples, const std::vector<std::string>& continuations) {
  FOLDMOE_CHECK(examples.size() == continuations.size(), "{} examples but {} continuations", examples.size(),
                continuations.size());
  if (examples.empty()) return 0.0;
  int64_t hits = 0;
  for (size_t i = 0; i < examples.size(); ++i) hits += exact_match(examples[i], continuations[i]) ? 1 : 0;
  return double(hits) / double(examples.size());
}

}  // namespace foldmoe::data
