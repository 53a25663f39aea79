#include "rl/tasks.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>

#include "core/check.h"
#include "core/rng.h"
#include "data/chat_template/chat_template.h"
#include "data/data_source.h"
#include "data/text_tokenizer.h"
#include "rl/math_reward.h"

namespace foldmoe::rl {

std::vector<std::string> ProblemSource::eval_tasks() const {
  std::vector<std::string> out;
  for (const RlProblem& p : eval_problems())
    if (std::find(out.begin(), out.end(), p.task) == out.end()) out.push_back(p.task);
  return out;
}

std::vector<JsonlProblem> load_jsonl_problems(const std::string& path, const data::Tokenizer& tokenizer) {
  std::ifstream in(path);
  if (!in)
    user_error("{}: cannot open the JSONL problem file\n  fix: check the path given in rl.data / rl.eval_data", path);
  std::vector<JsonlProblem> out;
  std::string line;
  int64_t lineno = 0;
  const std::string fix_shape =
      "each line must be a JSON object like {\"prompt\": \"What is 2+3?\", \"answer\": \"5\"}";
  while (std::getline(in, line)) {
    ++lineno;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      user_error("{}:{}: invalid JSON ({})\n  fix: {}", path, lineno, e.what(), fix_shape);
    }
    if (!j.is_object())
      user_error("{}:{}: expected a JSON object, got {}\n  fix: {}", path, lineno, j.type_name(), fix_shape);
    JsonlProblem p;
    p.line = lineno;
    for (const char* key : {"prompt", "answer"}) {
      if (!j.contains(key)) user_error("{}:{}: missing key \"{}\"\n  fix: {}", path, lineno, key, fix_shape);
      const nlohmann::json& v = j.at(key);
      std::string text;
      if (v.is_string())
        text = v.get<std::string>();
      else if (std::string(key) == "answer" && v.is_number())
        text = v.dump();
      else
        user_error("{}:{}: \"{}\" must be a string{}, got {}\n  fix: {}", path, lineno, key,
                   std::string(key) == "answer" ? " or a number" : "", v.type_name(), fix_shape);
      if (text.empty())
        user_error("{}:{}: \"{}\" is empty\n  fix: give every problem a non-empty {}", path, lineno, key, key);
      if (std::string(key) == "prompt") {
        // The prompt is tokenized at its first rollout; refuse it now, before the run writes anything.
        try {
          (void)tokenizer.encode(text);
        } catch (const UserError& e) {
          user_error("{}:{}: \"prompt\": {}\n  fix: write the prompt in text the model's tokenizer ({}) can encode",
                     path, lineno, e.what(), tokenizer.describe());
        }
      }
      (std::string(key) == "prompt" ? p.prompt : p.answer) = text;
    }
    out.push_back(std::move(p));
  }
  if (out.empty())
    user_error("{}: no problems (the file is empty or has only blank lines)\n  fix: {}", path, fix_shape);
  return out;
}

namespace {

class SyntheticSource final : public ProblemSource {
 public:
  SyntheticSource(const RlConfig& s, uint64_t data_seed)
      : tasks_(s.tasks), train_corpus_(uint64_t(s.seed), s.tasks), eval_corpus_(data_seed, s.tasks) {
    for (const std::string& t : tasks_)
      for (const data::TaskExample& ex : eval_corpus_.eval_set(t, s.eval_questions))
        eval_.push_back(RlProblem{t, ex.prompt, ex.answer});
  }
  RlProblem train_problem(int64_t i) const override {
    // Task of problem i: a uniform draw keyed by (seed, i); the example itself from the RL stream.
    const CounterRng rng(train_corpus_.seed(), "rl.synthetic.task", 0);
    const uint32_t u = rng.bits(uint64_t(i))[0];
    const std::string& t = tasks_[size_t((uint64_t(u) * tasks_.size()) >> 32)];
    const data::TaskExample ex = train_corpus_.rl_example(t, uint64_t(i));
    return RlProblem{t, ex.prompt, ex.answer};
  }
  const std::vector<RlProblem>& eval_problems() const override { return eval_; }
  ScoreResult score(const RlProblem& p, const std::string& response) const override {
    const std::string answer = data::extract_answer(response);
    bool ok;
    if (p.task == "chain" || p.task == "word")  // running totals: only the final one is the answer
      ok = !answer.empty() && data::chain_final_value(answer) == data::chain_final_value(p.answer);
    else
      ok = answer == p.answer;
    return {ok ? 1.0f : -1.0f, ok};
  }

 private:
  std::vector<std::string> tasks_;
  data::SyntheticCorpus train_corpus_, eval_corpus_;
  std::vector<RlProblem> eval_;
};

std::string render(const std::string& tmpl, const std::string& problem) {
  if (tmpl == "dapo-math") return dapo_math_prompt(problem);
  if (tmpl == "none") return problem;
  user_error("config error rl.reward.template: unknown template \"{}\"\n  fix: use dapo-math or none", tmpl);
}

class JsonlSource final : public ProblemSource {
 public:
  JsonlSource(const RlConfig& s, const data::Tokenizer& tokenizer, const std::string& tokenizer_spec)
      : seed_(uint64_t(s.seed)), fallback_(s.reward.equivalence_fallback) {
    const data::ChatTemplate chat = data::ChatTemplate::named(s.chat_template, tokenizer_spec);
    const data::ChatRenderOptions opt = data::chat_options_for(tokenizer, /*add_generation_prompt=*/true);
    const auto problem = [&](const std::string& path, const JsonlProblem& p) {
      RlProblem r{"jsonl", render(s.reward.template_name, p.prompt), p.answer, {}};
      if (chat.is_plain()) return r;
      // The chat-rendered user turn, encoded as HF encodes apply_chat_template's text (the template
      // writes bos itself where the model wants one). Truncating it would cut the template's header.
      try {
        r.ids = tokenizer.encode(chat.render_user_prompt(r.prompt, opt));
      } catch (const UserError& e) {
        user_error("{}:{}: {}", path, p.line, e.what());
      }
      if (int64_t(r.ids.size()) > s.max_prompt_tokens)
        user_error(
            "config error R8: {}:{}: the prompt is {} tokens after the chat template ({}), more than "
            "rl.max_prompt_tokens = {}\n  fix: shorten the prompt, or raise rl.max_prompt_tokens (keeping "
            "max_prompt_tokens + max_response_tokens <= [model] max_seq_len)",
            path, p.line, r.ids.size(), chat.origin(), s.max_prompt_tokens);
      return r;
    };
    std::set<std::string> seen;
    for (const JsonlProblem& p : load_jsonl_problems(s.data, tokenizer))
      if (seen.insert(p.prompt).second) train_.push_back(problem(s.data, p));
    if (!s.eval_data.empty())
      for (const JsonlProblem& p : load_jsonl_problems(s.eval_data, tokenizer))
        eval_.push_back(problem(s.eval_data, p));
  }
  RlProblem train_problem(int64_t i) const override {
    const int64_t n = int64_t(train_.size());
    const int64_t epoch = i / n, pos = i % n;
    if (epoch != cached_epoch_) {
      // Seeded Fisher-Yates shuffle of epoch `epoch`.
      perm_.resize(size_t(n));
      std::iota(perm_.begin(), perm_.end(), 0);
      const CounterRng rng(seed_, "rl.jsonl.epoch", uint64_t(epoch));
      for (int64_t k = n - 1; k > 0; --k) {
        const uint32_t u = rng.bits(uint64_t(k))[0];
        std::swap(perm_[size_t(k)], perm_[size_t((uint64_t(u) * uint64_t(k + 1)) >> 32)]);
      }
      cached_epoch_ = epoch;
    }
    return train_[size_t(perm_[size_t(pos)])];
  }
  const std::vector<RlProblem>& eval_problems() const override { return eval_; }
  ScoreResult score(const RlProblem& p, const std::string& response) const override {
    const MathScore m = score_math_response(response, p.answer, fallback_);
    return {m.score, m.acc};
  }

 private:
  uint64_t seed_;
  EquivalenceFallback fallback_;
  std::vector<RlProblem> train_, eval_;
  mutable int64_t cached_epoch_ = -1;
  mutable std::vector<int64_t> perm_;
};

}  // namespace

std::unique_ptr<ProblemSource> make_problem_source(const RlConfig& s, uint64_t data_seed,
                                                   const data::Tokenizer& tokenizer,
                                                   const std::string& tokenizer_spec) {
  if (!s.data.empty()) return std::make_unique<JsonlSource>(s, tokenizer, tokenizer_spec);
  if (s.tasks.empty())
    user_error(
        "config error rl.tasks: empty and rl.data is not set\n  fix: list synthetic tasks (e.g. tasks = "
        "[\"add\", \"chain\"]) or set rl.data to a JSONL file");
  for (const std::string& t : s.tasks) (void)data::task_from_name(t);
  return std::make_unique<SyntheticSource>(s, data_seed);
}

std::vector<int32_t> problem_prompt_ids(const RlProblem& p, std::optional<int32_t> document_start,
                                        const data::Tokenizer& tokenizer, int64_t max_prompt_tokens) {
  if (!p.ids.empty()) return p.ids;  // chat-rendered, length checked when loaded
  std::vector<int32_t> ids = data::prompt_ids(document_start, tokenizer, p.prompt);
  if (int64_t(ids.size()) > max_prompt_tokens) ids.erase(ids.begin(), ids.end() - max_prompt_tokens);
  return ids;
}

std::vector<int32_t> response_stop_ids(const RlConfig& c, const data::Tokenizer& tokenizer,
                                       const std::string& tokenizer_spec) {
  if (c.data.empty() || c.chat_template == "plain") return {};
  // A chat model ends its turn with an end-of-turn token (<|im_end|>, <|eot_id|>) as often as with
  // eos; both stop the rollout. Without any, responses would always run to max_response_tokens.
  std::vector<int32_t> ids =
      data::chat_stop_ids(tokenizer, tokenizer_spec, data::ChatTemplate::named(c.chat_template, tokenizer_spec));
  if (!tokenizer.eos_id() && ids.empty())
    user_error(
        "config error R9: rl.chat_template = \"{}\" with a tokenizer that has no end-of-sequence token ({})\n  fix: "
        "use a tokenizer whose tokenizer_config.json names an eos_token (or generation_config.json an "
        "eos_token_id), or rl.chat_template = \"plain\"",
        c.chat_template, tokenizer.describe());
  return ids;
}

}  // namespace foldmoe::rl
