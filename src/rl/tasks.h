// Verifiable RL problems (docs/rl.md §2 stage 1, §6): where prompts come from and how a response is
// scored.
//
// Sources:
//   synthetic  the built-in tasks of data/synthetic.h (`rl.tasks`, e.g. add, chain). Training
//              problem i draws its task uniformly from the list and its example from the corpus's
//              RL stream (a pure function of (seed, i)); held-out problems are the corpus's
//              evaluation sets (`rl.eval_questions` per task), a different stream. The prompt is the
//              task line up to '=' ("add:12+345="); the response is the answer then <eos>. Verifier:
//              exact answer, except `chain`, whose answer lists running totals and is checked on its
//              final value only (the text after the last ','), so the model may shorten or lengthen
//              its reasoning.
//   jsonl      a file of lines {"prompt": "...", "answer": "..."} (`rl.data`; held-out `rl.eval_data`).
//              Problems repeated verbatim are dropped (first kept). Training problems are drawn in
//              seeded shuffled epochs without replacement. The prompt is rendered through
//              `rl.reward.template` (`dapo-math`); the verifier is the math reward of docs/rl.md §6
//              (`Answer:` extraction, normalisation, optional numeric fallback).
// Malformed files raise UserError naming file:line and the fix.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/rl_section.h"
#include "data/synthetic.h"
#include "data/text_tokenizer.h"

namespace foldmoe::rl {

struct RlProblem {
  std::string task;    // synthetic task name, or "jsonl"
  std::string prompt;  // rendered prompt text (no <bos>)
  std::string answer;  // ground truth
};

// One JSONL line {"prompt", "answer"}; `answer` may be a string or a number.
struct JsonlProblem {
  std::string prompt, answer;
};
// Reads and validates a JSONL file (blank lines are skipped). UserError: missing file, invalid JSON,
// a line that is not an object, missing or wrongly typed keys, a prompt the tokenizer cannot encode, or no problems at
// all.
std::vector<JsonlProblem> load_jsonl_problems(const std::string& path, const data::Tokenizer& tokenizer);

struct ScoreResult {
  float score = -1.0f;  // ±1
  bool acc = false;
};

class ProblemSource {
 public:
  virtual ~ProblemSource() = default;
  // Training problem i (i = 0, 1, ... in consumption order).
  virtual RlProblem train_problem(int64_t i) const = 0;
  // The held-out set (may be empty).
  virtual const std::vector<RlProblem>& eval_problems() const = 0;
  // Scores a response (its text without the <eos>).
  virtual ScoreResult score(const RlProblem& p, const std::string& response) const = 0;
  // The task names of the held-out set, in order of first appearance.
  std::vector<std::string> eval_tasks() const;
};

// From the [rl] section: JSONL if rl.data is set, else the synthetic tasks (seeded by rl.seed for
// training problems and by the corpus seed `data_seed` for the held-out sets).
// Prompts are checked against `tokenizer`, the policy's.
std::unique_ptr<ProblemSource> make_problem_source(const RlConfig& c, uint64_t data_seed,
                                                   const data::Tokenizer& tokenizer);

}  // namespace foldmoe::rl
