// The [rl] section of the configuration table (Config::rl is the typed RlConfig), presets, enum
// and pair keys, the JSONL loader and the synthetic RL tasks (chain) with their verifiers.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "config/config.h"
#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/toml_writer.h"
#include "core/check.h"
#include "data/synthetic.h"
#include "data/text_tokenizer.h"
#include "rl/tasks.h"

namespace foldmoe {
namespace {

TEST(RlConfigKeys, DefaultsAreTheHapoPreset) {
  const Config c;
  EXPECT_EQ(c.rl, rl::rl_preset_config(rl::RlPreset::Hapo));
}

TEST(RlConfigKeys, DottedKeysSubTablesAndFlags) {
  const Config c = config_from_toml(R"(
[rl]
prompts_per_step = 32
hapo.ats.tau = 0.1
loss.aggregation = "seq-mean-token-sum"
router_replay.mode = "old"
[rl.dynamic_sampling]
max_rounds = 3
)",
                                    "test.toml");
  EXPECT_EQ(c.rl.prompts_per_step, 32);
  EXPECT_DOUBLE_EQ(c.rl.hapo.ats.tau, 0.1);
  EXPECT_EQ(c.rl.loss.aggregation, rl::LossAggregation::SeqMeanTokenSum);
  EXPECT_EQ(c.rl.dynamic_sampling.max_rounds, 3);
  EXPECT_EQ(c.rl.router_replay.mode, std::optional<rl::RouterReplayMode>(rl::RouterReplayMode::Old));
  Config d = c;
  apply_overrides(d, {"--rl.hapo.dar.beta=0.5", "--rl.optim.betas=[0.8,0.9]", "--rl.router_replay.mode=auto",
                      "--rl.hapo.hhat_sign=paper-code"});
  EXPECT_DOUBLE_EQ(d.rl.hapo.dar.beta, 0.5);
  EXPECT_DOUBLE_EQ(d.rl.optim.beta1, 0.8);
  EXPECT_DOUBLE_EQ(d.rl.optim.beta2, 0.9);
  EXPECT_FALSE(d.rl.router_replay.mode.has_value());  // auto: chosen by the model kind
  EXPECT_EQ(d.rl.hapo.hhat_sign, rl::HhatSign::PaperCode);
  // Enums and the betas pair are written as the user writes them.
  const std::string dump = config_to_toml(d);
  EXPECT_NE(dump.find("\nloss.aggregation = \"seq-mean-token-sum\"  #"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\noptim.betas = [0.8, 0.9]  #"), std::string::npos) << dump;
  EXPECT_NE(dump.find("\nrouter_replay.mode = \"auto\"  #"), std::string::npos) << dump;
  EXPECT_EQ(config_from_toml("[rl]\noptim.betas = [0.5, 0.75]\n", "t").rl.optim.beta2, 0.75);
}

TEST(RlConfigKeys, PresetAppliesFirstAndExplicitKeysOverrideIt) {
  // `preset` sorts after `loss` but is applied first.
  const Config c = config_from_toml("[rl]\nloss.clip_high = 0.3\npreset = \"grpo\"\n", "t.toml");
  EXPECT_EQ(c.rl.preset, rl::RlPreset::Grpo);
  EXPECT_EQ(c.rl.advantage.estimator, rl::AdvantageEstimator::Grpo);
  EXPECT_EQ(c.rl.loss.aggregation, rl::LossAggregation::SeqMeanTokenMean);
  EXPECT_DOUBLE_EQ(c.rl.loss.clip_high, 0.3);
  EXPECT_FALSE(c.rl.hapo.ats.enabled);
  Config d;
  apply_overrides(d, {"--rl.preset=dapo", "--rl.dynamic_sampling.enabled=false"});
  EXPECT_EQ(d.rl.preset, rl::RlPreset::Dapo);
  EXPECT_FALSE(d.rl.dynamic_sampling.enabled);
  EXPECT_DOUBLE_EQ(d.rl.loss.clip_high, 0.28);
  // Flags apply in order: a preset after a key resets it.
  apply_overrides(d, {"--rl.loss.clip_high=0.5", "--rl.preset=grpo"});
  EXPECT_DOUBLE_EQ(d.rl.loss.clip_high, 0.2);
  // Non-preset fields survive a preset.
  Config e;
  apply_overrides(e, {"--rl.prompts_per_step=8", "--rl.preset=grpo"});
  EXPECT_EQ(e.rl.prompts_per_step, 8);
  EXPECT_EQ(e.rl, [] {
    rl::RlConfig r = rl::rl_preset_config(rl::RlPreset::Grpo);
    r.prompts_per_step = 8;
    return r;
  }());
}

std::string error_text(auto&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(RlConfigKeys, BadEnumOrPairNamesTheKeyAndTheChoices) {
  Config c;
  std::string e = error_text([&] { apply_overrides(c, {"--rl.loss.aggregation=token-sum"}); });
  EXPECT_EQ(e,
            "override --rl.loss.aggregation=token-sum: [rl] loss.aggregation = \"token-sum\" is not one of "
            "token-mean | seq-mean-token-mean | seq-mean-token-sum | seq-mean-token-sum-norm");
  e = error_text([] { config_from_toml("[rl]\npreset = \"ppo\"\n", "t.toml"); });
  EXPECT_EQ(e, "config t.toml: [rl] preset = \"ppo\" is not one of grpo | dapo | hapo | hapo-released");
  e = error_text([] { config_from_toml("[rl]\nrouter_replay.mode = \"on\"\n", "t.toml"); });
  EXPECT_NE(e.find("auto | rollout | old | off"), std::string::npos) << e;
  e = error_text([] { config_from_toml("[rl]\nadvantage.estimator = 1\n", "t.toml"); });
  EXPECT_NE(e.find("[rl] advantage.estimator expects a string, got integer 1"), std::string::npos) << e;
  e = error_text([] { config_from_toml("[rl]\noptim.betas = [0.9]\n", "t.toml"); });
  EXPECT_NE(e.find("[rl] optim.betas expects an array of two floats"), std::string::npos) << e;
  e = error_text([&] { apply_overrides(c, {"--rl.optim.betas=0.9,0.99,0.999"}); });
  EXPECT_NE(e.find("[rl] optim.betas expects two floats"), std::string::npos) << e;
  EXPECT_THROW(config_from_toml("[rl]\nhapo.ats.taux = 1.0\n", "t.toml"), UserError);
}

const data::Tokenizer* char_tok() {
  static const std::unique_ptr<data::Tokenizer> tok = data::load_tokenizer("char");
  return tok.get();
}

std::string write_tmp(const std::string& name, const std::string& text) {
  const auto p = std::filesystem::temp_directory_path() / ("foldmoe-rl-" + std::to_string(::getpid()) + "-" + name);
  std::ofstream(p) << text;
  return p.string();
}

void expect_error(const std::string& path, const std::vector<std::string>& parts) {
  try {
    rl::load_jsonl_problems(path, *char_tok());
    FAIL() << "expected UserError for " << path;
  } catch (const UserError& e) {
    for (const std::string& s : parts) EXPECT_NE(std::string(e.what()).find(s), std::string::npos) << e.what();
  }
}

TEST(RlJsonl, LoadsAndReportsFileLineAndFix) {
  const std::string ok =
      write_tmp("ok.jsonl", "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\n\n{\"prompt\": \"2+2?\", \"answer\": 4}\n");
  const auto probs = rl::load_jsonl_problems(ok, *char_tok());
  ASSERT_EQ(probs.size(), 2u);
  EXPECT_EQ(probs[1].answer, "4");
  expect_error(write_tmp("bad.jsonl", "{\"prompt\": \"a\", \"answer\": \"1\"}\n{\"prompt\": \"b\", \n"),
               {"bad.jsonl:2", "invalid JSON", "fix:"});
  expect_error(write_tmp("miss.jsonl", "{\"prompt\": \"a\"}\n"), {"miss.jsonl:1", "missing key \"answer\"", "fix:"});
  expect_error(write_tmp("type.jsonl", "{\"prompt\": 3, \"answer\": \"1\"}\n"),
               {"type.jsonl:1", "\"prompt\" must be a string"});
  expect_error(write_tmp("arr.jsonl", "[1, 2]\n"), {"arr.jsonl:1", "expected a JSON object"});
  expect_error(write_tmp("empty.jsonl", "\n  \n"), {"empty.jsonl", "no problems"});
  expect_error("/nonexistent/x.jsonl", {"/nonexistent/x.jsonl", "cannot open"});
}

TEST(RlJsonl, SourceDeduplicatesShufflesAndScoresWithTheMathReward) {
  Config c;
  c.rl.data = write_tmp("train.jsonl",
                        "{\"prompt\": \"p1\", \"answer\": \"1\"}\n{\"prompt\": \"p2\", \"answer\": \"2\"}\n"
                        "{\"prompt\": \"p1\", \"answer\": \"1\"}\n{\"prompt\": \"p3\", \"answer\": \"3\"}\n");
  c.rl.reward.template_name = "none";
  const auto src = rl::make_problem_source(c.rl, 1, *char_tok());
  std::set<std::string> epoch0, epoch1;
  for (int i = 0; i < 3; ++i) epoch0.insert(src->train_problem(i).prompt);
  for (int i = 3; i < 6; ++i) epoch1.insert(src->train_problem(i).prompt);
  EXPECT_EQ(epoch0, (std::set<std::string>{"p1", "p2", "p3"}));  // duplicate dropped, no repeats in an epoch
  EXPECT_EQ(epoch1, epoch0);
  const rl::RlProblem p{"jsonl", "p", "1,000"};
  EXPECT_TRUE(src->score(p, "so the total is...\nAnswer: 1000").acc);
  EXPECT_FALSE(src->score(p, "\\boxed{1000}").acc);
  EXPECT_TRUE(src->eval_problems().empty());
}

TEST(RlSynthetic, ChainTaskAndVerifiers) {
  const data::SyntheticCorpus corpus(3, {"add", "chain"});
  for (int i = 0; i < 200; ++i) {
    const data::TaskExample ex = corpus.rl_example("chain", uint64_t(i));
    // Evaluate the prompt left to right and compare every running total.
    const std::string expr = ex.prompt.substr(6, ex.prompt.size() - 7);
    int total = expr[0] - '0';
    std::string totals;
    for (size_t j = 1; j + 1 < expr.size() + 1; j += 2) {
      total += (expr[j] == '+' ? 1 : -1) * (expr[j + 1] - '0');
      if (!totals.empty()) totals.push_back(',');
      totals.append(std::to_string(total));
    }
    ASSERT_EQ(ex.answer, totals) << ex.prompt;
    ASSERT_LE(int(ex.line().size()), data::max_line_tokens(data::Task::Chain));
  }
  Config c;
  c.rl.tasks = {"add", "chain"};
  c.rl.eval_questions = 10;
  const auto src = rl::make_problem_source(c.rl, 7, *char_tok());
  EXPECT_EQ(src->eval_problems().size(), 20u);
  EXPECT_EQ(src->eval_tasks(), (std::vector<std::string>{"add", "chain"}));
  const rl::RlProblem chain{"chain", "chain:7+5-9+3=", "12,3,6"};
  EXPECT_TRUE(src->score(chain, "12,3,6").acc);
  EXPECT_TRUE(src->score(chain, "6").acc);  // only the final value counts
  EXPECT_TRUE(src->score(chain, "1,2,6").acc);
  EXPECT_FALSE(src->score(chain, "12,3,7").acc);
  EXPECT_FALSE(src->score(chain, "").acc);
  const rl::RlProblem word{"word", "word:ann has 7. gets 5. eats 9. buys 3.=", "12,3,6"};
  EXPECT_TRUE(src->score(word, "12,3,6").acc);
  EXPECT_TRUE(src->score(word, "6").acc);  // like chain: only the final count counts
  EXPECT_FALSE(src->score(word, "12,3,5").acc);
  EXPECT_FALSE(src->score(word, "6,").acc);
  EXPECT_FALSE(src->score(word, "").acc);
  const rl::RlProblem add{"add", "add:12+345=", "357"};
  EXPECT_TRUE(src->score(add, "357").acc);
  EXPECT_EQ(src->score(add, "3570").score, -1.0f);
  // Training problems are a pure function of (seed, index).
  EXPECT_EQ(src->train_problem(5).prompt, rl::make_problem_source(c.rl, 7, *char_tok())->train_problem(5).prompt);
}

// With a chat template, each prompt's ids are those of the rendered user turn (no <bos> added: the
// template decides), a rendered prompt longer than max_prompt_tokens is R8 naming file:line, and
// plain prompts keep their empty ids (the trainer prepends the document start and truncates).
TEST(RlJsonl, ChatTemplatePromptsAreRenderedAndLengthChecked) {
  Config c;
  c.rl.data = write_tmp("chat.jsonl", "{\"prompt\": \"1+1?\", \"answer\": \"2\"}\n");
  c.rl.reward.template_name = "none";
  c.rl.chat_template = "chatml";
  const auto src = rl::make_problem_source(c.rl, 1, *char_tok(), "char");
  const rl::RlProblem p = src->train_problem(0);
  EXPECT_EQ(p.ids, char_tok()->encode("<|im_start|>user\n1+1?<|im_end|>\n<|im_start|>assistant\n"));
  EXPECT_EQ(rl::problem_prompt_ids(p, char_tok()->bos_id(), *char_tok(), 1024), p.ids);
  // eos only: <|im_end|> is no single id of the character tokenizer.
  EXPECT_EQ(rl::response_stop_ids(c.rl, *char_tok(), "char"), std::vector<int32_t>{*char_tok()->eos_id()});
  c.rl.max_prompt_tokens = 20;
  try {
    (void)rl::make_problem_source(c.rl, 1, *char_tok(), "char");
    FAIL() << "expected R8";
  } catch (const UserError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("R8"), std::string::npos) << m;
    EXPECT_NE(m.find("chat.jsonl:1"), std::string::npos) << m;
    EXPECT_NE(m.find("max_prompt_tokens = 20"), std::string::npos) << m;
  }
  c.rl.chat_template = "plain";
  const rl::RlProblem q = rl::make_problem_source(c.rl, 1, *char_tok(), "char")->train_problem(0);
  EXPECT_TRUE(q.ids.empty());
  std::vector<int32_t> want = {*char_tok()->bos_id()};
  for (int32_t id : char_tok()->encode("1+1?")) want.push_back(id);
  want.erase(want.begin(), want.end() - 3);  // left truncation keeps the last tokens
  EXPECT_EQ(rl::problem_prompt_ids(q, char_tok()->bos_id(), *char_tok(), 3), want);
}

}  // namespace
}  // namespace foldmoe
