// Resource rules checked before anything is allocated: size products (A4), the model's context
// (A5, R7), the memory estimate against available memory (T3), and the watchdog's message.
#include <gtest/gtest.h>

#include <climits>
#include <string>

#include "comm/mpi_watchdog.h"
#include "config/rl_rules.h"
#include "config/size_rules.h"
#include "config/validate.h"
#include "core/check.h"
#include "train/memory_check.h"
#include "train/memory_estimate.h"
#include "train/trainer.h"

using namespace foldmoe;

namespace {

std::string problems_text(const Config& c) {
  std::string out;
  for (const std::string& m : config_problems(c).messages()) out += m + "\n";
  return out;
}

}  // namespace

TEST(SizeRules, CheckedProductDetectsOverflow) {
  int64_t n = 0;
  EXPECT_TRUE(checked_product({3, 4, 5}, &n));
  EXPECT_EQ(n, 60);
  EXPECT_TRUE(checked_product({INT64_MAX, 1}, &n));
  EXPECT_EQ(n, INT64_MAX);
  EXPECT_FALSE(checked_product({int64_t(1) << 32, int64_t(1) << 32}, &n));
  EXPECT_FALSE(checked_product({INT_MAX, INT_MAX, INT_MAX}, &n));
  EXPECT_FALSE(checked_product({-1, 2}, &n));
}

TEST(SizeRules, DefaultAndShippedSizesPass) {
  EXPECT_EQ(problems_text(Config{}), "");
}

TEST(SizeRules, HugeHiddenIsRefusedWithTheProduct) {
  Config c;
  c.model.hidden = 100'000'000;
  c.model.heads = 1, c.model.kv_heads = 1;
  const std::string text = problems_text(c);
  // hidden x heads x head_dim = 1e8 x 1 x 1e8 = 1e16 elements.
  EXPECT_NE(text.find("config error A4: [model] hidden x heads x head_dim = 100000000 x 1 x 100000000 = "
                      "10000000000000000 elements"),
            std::string::npos)
      << text;
}

TEST(SizeRules, LongSequencesAreRefusedByContextAndScores) {
  Config c;
  c.train.seq_len = 10'000'000;
  const std::string text = problems_text(c);
  EXPECT_NE(text.find("A4: the attention scores of one head, [train] seq_len^2 = 10000000^2 = 100000000000000"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("A5: [train] seq_len = 10000000 is longer than the model's context [model] max_seq_len = 65536"),
            std::string::npos)
      << text;
  c.train.seq_len = 128;
  c.model.max_seq_len = 100;
  EXPECT_NE(problems_text(c).find("A5"), std::string::npos);
  c.model.max_seq_len = 1;
  EXPECT_NE(problems_text(c).find("V1: [model] max_seq_len = 1 must be in [2, 1048576]"), std::string::npos);
}

TEST(SizeRules, TooManyExpertsAreRefusedBeforeRegistration) {
  Config c;
  c.moe.num_experts = 100'000;
  const std::string text = problems_text(c);
  EXPECT_NE(text.find("A4: [model] layers x [moe] num_experts = 2 x 100000 expert weight sets"), std::string::npos)
      << text;
  c.moe.num_experts = 8;
  c.model.layers = 9000;  // 72000 expert weight sets
  EXPECT_NE(problems_text(c).find("A4"), std::string::npos);
}

TEST(SizeRules, ProductsOfIntMaxSizesDoNotOverflow) {
  Config c;
  c.model.ffn = INT_MAX;
  c.model.hidden = INT_MAX - 1;  // even, divisible by heads = 2
  c.model.heads = 2, c.model.kv_heads = 2;
  c.moe.ffn_hidden_size = INT_MAX;
  c.moe.num_experts = INT_MAX;
  c.train.micro_batch = INT_MAX;
  const std::string text = problems_text(c);
  EXPECT_NE(text.find("more than 2^63"), std::string::npos) << text;
}

TEST(RlContext, PromptPlusResponseMustFitTheModel) {
  rl::RlConfig c;
  c.max_prompt_tokens = 64;
  c.max_response_tokens = 100'000;
  rl::RlRunFacts f;
  f.max_seq_len = 65536;
  std::string text;
  for (const std::string& m : rl::rl_config_problems(c, f).messages()) text += m;
  EXPECT_NE(text.find("config error R7: [rl] max_prompt_tokens + max_response_tokens = 64 + 100000"), std::string::npos)
      << text;
  c.max_response_tokens = 65536 - 64;
  text.clear();
  for (const std::string& m : rl::rl_config_problems(c, f).messages()) text += m;
  EXPECT_EQ(text.find("R7"), std::string::npos) << text;
}

TEST(MemoryCheck, ParsesMemAvailable) {
  const std::string meminfo =
      "MemTotal:       131072000 kB\nMemFree:         1000 kB\nMemAvailable:   65536000 kB\nBuffers: 1 kB\n";
  const auto v = parse_mem_available(meminfo);
  ASSERT_TRUE(v.has_value());
  EXPECT_DOUBLE_EQ(*v, 65536000.0 * 1024);
  EXPECT_FALSE(parse_mem_available("MemTotal: 1 kB\n").has_value());
  EXPECT_FALSE(parse_mem_available("MemAvailable: lots\n").has_value());
  EXPECT_FALSE(parse_mem_available("XMemAvailable: 5 kB\n").has_value());
}

TEST(MemoryCheck, EstimateTimesLocalRanksAgainstAvailable) {
  const double gib = double(1 << 30);
  EXPECT_TRUE(memory_problems(4 * gib, 4, 16 * gib).empty());
  const Problems p = memory_problems(4 * gib, 4, 15 * gib);
  ASSERT_FALSE(p.empty());
  const std::string msg = p.messages()[0];
  EXPECT_NE(msg.find("config error T3: the memory estimate is 4.00 GiB per rank x 4 ranks on this node = 16.00 GiB "
                     "but this node has 15.00 GiB available"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find("--train.skip_memory_check=true"), std::string::npos) << msg;
}

TEST(MemoryCheck, ALargeValidModelIsRefusedUnlessSkipped) {
  // Valid sizes (no A4) whose weights alone need ~0.5 TB: no machine running the tests has it.
  Config c = resolve_config(Config{});
  c.model.hidden = 16384, c.model.heads = 32, c.model.kv_heads = 8, c.model.ffn = 65536;
  c.moe.num_experts = 0;
  c.model.layers = 32;
  ASSERT_EQ(problems_text(c), "");
  const double est = largest_rank_estimate(c, ParallelSizes{});
  EXPECT_GT(est, 5e11);
  try {
    check_memory_fits(c, ParallelSizes{}, 1);
    ADD_FAILURE() << "a " << est << "-byte model passed the memory check";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("config error T3"), std::string::npos) << e.what();
  }
  c.train.skip_memory_check = true;
  EXPECT_NO_THROW(check_memory_fits(c, ParallelSizes{}, 1));
  // The default tiny model fits anywhere.
  EXPECT_NO_THROW(check_memory_fits(resolve_config(Config{}), ParallelSizes{}, 64));
}

TEST(Watchdog, MessageNamesRankGroupOperationAndTimeout) {
  const std::string m = watchdog_message(2, "all_reduce", "dp", 1, 4, 3.31, 3);
  EXPECT_NE(m.find("rank 2: all_reduce on group 'dp' (member 1 of 4) has waited 3.3 s, longer than [parallel] "
                   "timeout_s = 3"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("--parallel.timeout_s"), std::string::npos) << m;
}

// The HF architecture options change the parameter count: the estimate counts exactly what the
// one-stage model registers (no lm_head with tied embeddings; biases and QK-norm weights).
TEST(MemoryEstimate, CountsTheArchitectureOptionsParameters) {
  for (const char* qk : {"none", "head", "full"})
    for (bool tie : {false, true}) {
      Config cfg;
      cfg.model.vocab = 50;
      cfg.model.qk_norm = qk;
      cfg.model.tie_embeddings = tie;
      cfg.model.attention_bias = tie;
      Model model(cfg, ProcessGroups::single_process());
      int64_t registered = 0;
      for (int i = 0; i < model.dense().size(); ++i) registered += Param{&model.dense(), i}.numel();
      ParallelSizes sizes;
      const std::vector<StageMemory> est = estimate_stage_memory(cfg, sizes);
      ASSERT_EQ(est.size(), 1u);
      EXPECT_EQ(est[0].dense_params, registered) << "qk_norm " << qk << " tie " << tie;
    }
}
