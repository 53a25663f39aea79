// The embedded default corpus: small character-level tasks generated from a seed, so a run needs
// no data files and every run (and every layout) sees exactly the same tokens.
//
// One line per example, tagged with its task, ending in '\n' (= <eos>):
//   add      add:12+345=357          operands of 1-3 digits (digit count uniform, then value)
//   reverse  rev:abcd=dcba           3-6 lowercase letters
//   sort     sort:5183=1358          3-6 digits, sorted ascending (repeats kept)
//   lookup   kv:a=3,b=7,c=1;b=7      2-5 distinct one-letter keys with one-digit values, one queried
//   chain    chain:7+5-9+3=12,3,6    3-5 one-digit operands joined by + or -, evaluated left to right;
//                                    the answer lists every running total, the final result last
//                                    (a multi-step task; verifiers may check only the final value)
//   word     word:ann has 7. gets 5. eats 9. buys 3.=12,3,6
//                                    a word problem: a name with a start of 1-29 things, then 2-3
//                                    steps of 1-9 things, gained (gets, buys, wins) or lost (eats,
//                                    uses, pays; never below 0); the answer lists every running
//                                    total, the final count last (verified on the final value only).
//                                    Harder than chain for a small model: two-digit totals, the sign
//                                    of each step read off its verb, and long lines.
// The prompt is everything up to and including the last '=', the answer the rest of the line.
// Sized so a 2-layer, hidden-64 model learns much of it in a few hundred steps but not all of it.
//
// Global batch of optimizer step `step`: GBS sequences of S+1 tokens. Sequence i is a pure
// function of (seed, step, i) (a CounterRng keyed on the seed, sub-stream = step, counters from
// i), never of the layout, the call order or earlier calls: resuming at step k replays step k's
// data exactly, and every TP/CP/DP/PP layout slices the same global batch.
//
// Packing: <bos>, then whole lines while they fit, then <pad> to the end. Targets are tokens[:,
// 1:]; the loss mask is 1 on every real target (prompt, answer and <eos>), 0 on <pad>.
//
// Evaluation examples come from a different stream (another RNG tag, keyed by task and example
// index), so they are not the training stream. (Short examples such as 1-digit additions can of
// course also occur in training by chance: the task space is small.)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"
#include "data/batch.h"

namespace foldmoe::data {

// Canonical task ids, stable across runs and configs (metrics index by them).
enum class Task : uint8_t { Add = 0, Reverse = 1, Sort = 2, Lookup = 3, Chain = 4, Word = 5 };
inline constexpr int kNumTasks = 6;

// "add", "reverse", "sort", "lookup", "chain", "word" (the DataConfig.tasks names).
const char* task_name(Task t);
// The tag that starts a line: "add", "rev", "sort", "kv", "chain", "word".
const char* task_tag(Task t);
// Parses a DataConfig.tasks name; UserError listing the valid names otherwise.
Task task_from_name(std::string_view name);
// Tokens of the longest line the task can produce, including the <eos>.
int max_line_tokens(Task t);

struct TaskExample {
  Task task;
  std::string prompt;  // e.g. "add:12+345="
  std::string answer;  // e.g. "357"
  std::string line() const { return prompt + answer + "\n"; }
};

class SyntheticCorpus {
 public:
  // `tasks`: DataConfig.tasks names, non-empty, no repeats. Lines draw their task uniformly from
  // this list.
  SyntheticCorpus(uint64_t seed, std::vector<std::string> tasks);

  // The global batch of optimizer step `step` (pure function of seed and step; see above).
  // UserError if seq_len is too short to hold the longest line of a selected task.
  Batch global_batch(int64_t step, int gbs, int seq_len) const;

  // `count` held-out examples of `task` (a DataConfig.tasks name; need not be in the training
  // list). Example i depends only on (seed, task, i): eval_set(t, 10) is a prefix of eval_set(t, 20).
  std::vector<TaskExample> eval_set(const std::string& task, int count) const;

  // Example `index` of a third stream (neither the training batches nor the evaluation sets), for
  // RL prompts: depends only on (seed, task, index).
  TaskExample rl_example(const std::string& task, uint64_t index) const;

  const std::vector<Task>& tasks() const { return tasks_; }
  uint64_t seed() const { return seed_; }
  static int32_t vocab_size();
  // The shortest seq_len S that fits one line of every selected task.
  int min_seq_len() const;

 private:
  uint64_t seed_;
  std::vector<Task> tasks_;
};

// The answer a model gave: the continuation after the prompt, up to (excluding) the first '\n'.
std::string extract_answer(std::string_view continuation);
// Token form: generated ids after the prompt; stops at the first <eos> (<pad>/<bos> ignored).
std::string extract_answer(std::span<const int32_t> continuation_ids);
// Whether the continuation's answer equals the example's answer exactly.
bool exact_match(const TaskExample& ex, std::string_view continuation);
bool exact_match(const TaskExample& ex, std::span<const int32_t> continuation_ids);
// The final result of a chain or word answer: the text after the last ',' ("12,3,6" -> "6").
std::string_view chain_final_value(std::string_view answer);

// Fraction of examples answered exactly (continuations[i] belongs to examples[i]); 0 if empty.
double exact_match_rate(const std::vector<TaskExample>& examples, const std::vector<std::string>& continuations);

}  // namespace foldmoe::data
