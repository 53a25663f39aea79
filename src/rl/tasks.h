// Verifiable RL problems (docs/rl.md §2 stage 1, §6): where prompts come from and how a response is
// scored.
//
// Sources:
//   synthetic  the built-in tasks of data/synthetic.h (`rl.tasks`, e.g. add, chain). Training
//              problem i draws its task uniformly from the list and its example from the corpus's
//              RL stream (a pure function of (seed, i)); held-out problems are the corpus's
//              evaluation sets (`rl.eval_questions` per task), a different stream. The prompt is the
//              task line up to '=' ("add:12+345="); the response is the answer then <eos>. Verifier:
//              exact answer, except `chain` and `word`, whose answers list running totals and are
//              checked on their final value only (the text after the last ','), so the model may shorten or lengthen
//              its reasoning.
//   jsonl      a file of lines {"prompt": "...", "answer": "..."} (`rl.data`; held-out `rl.eval_data`).
//              Problems repeated verbatim are dropped (first kept). Training problems are drawn in
//              seeded shuffled epochs without replacement. The prompt is rendered through
//              `rl.reward.template` (`dapo-math`), then, with `rl.chat_template` other than plain, as
//              a user turn of the chat template (docs/chat-templates.md) and encoded once at load;
//              the verifier is the math reward of docs/rl.md §6 (`Answer:` extraction,
//              normalisation, optional numeric fallback) on the decoded response.
// Malformed files raise UserError naming file:line and the fix.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
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
  // With a chat template (rl.chat_template other than plain): the ids of the chat-rendered prompt,
  // checked against rl.max_prompt_tokens. Empty = <bos> + the prompt's ids, left-truncated.
  std::vector<int32_t> ids;
};

// One JSONL line {"prompt", "answer"}; `answer` may be a string or a number.
struct JsonlProblem {
  std::string prompt, answer;
  int64_t line = 0;  // 1-based line of the file
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
// JSONL prompts are wrapped in rl.chat_template; `tokenizer_spec` (the tokenizer's [data] spec)
// locates the model's own template. UserError R8 for a chat-rendered prompt longer than
// rl.max_prompt_tokens, K9/K10 for a template that cannot be loaded or rendered.
std::unique_ptr<ProblemSource> make_problem_source(const RlConfig& c, uint64_t data_seed,
                                                   const data::Tokenizer& tokenizer,
                                                   const std::string& tokenizer_spec = "char");

// A problem's prompt as token ids: its chat-rendered ids (RlProblem::ids), else `document_start`
// (if any) and the prompt text's ids, left-truncated to max_prompt_tokens.
std::vector<int32_t> problem_prompt_ids(const RlProblem& p, std::optional<int32_t> document_start,
                                        const data::Tokenizer& tokenizer, int64_t max_prompt_tokens);

// The ids besides eos that end a response: with JSONL data and a chat template, the chat's stop
// ids (data::chat_stop_ids); none otherwise. UserError R9 if a chat template meets a tokenizer
// without any end-of-sequence token.
std::vector<int32_t> response_stop_ids(const RlConfig& c, const data::Tokenizer& tokenizer,
                                       const std::string& tokenizer_spec);

}  // namespace foldmoe::rl
