#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unistd.h>

#include "train/metrics.h"

using namespace foldmoe;

namespace {
StepMetrics sample() {
  StepMetrics m;
  m.step = 12;
  m.lm_loss = 2.34561;
  m.aux_loss = 1.00123;
  m.z_loss = 0.0;
  m.grad_norm = 1.234;
  m.lr = 3e-3;
  m.tokens_per_s = 12345.4;
  m.mfu = 0.1234;
  m.tokens_per_expert = {{4, 2, 1, 1}, {2, 2, 2, 2}};
  m.expert_imbalance = expert_imbalance(m.tokens_per_expert);
  m.step_time_s = 0.25;
  return m;
}
}  // namespace

TEST(Metrics, ExpertImbalance) {
  EXPECT_DOUBLE_EQ(expert_imbalance({{4, 2, 1, 1}}), 2.0);   // max 4 / mean 2
  EXPECT_DOUBLE_EQ(expert_imbalance({{4, 2, 1, 1}, {2, 2, 2, 2}}), 1.5);
  EXPECT_DOUBLE_EQ(expert_imbalance({{0, 0}, {3, 1}}), 1.5);  // empty layers skipped
  EXPECT_DOUBLE_EQ(expert_imbalance({}), 0.0);
}

TEST(Metrics, StepLineFormat) {
  StepMetrics m = sample();
  EXPECT_EQ(format_step_line(m),
            "step    12 | lm 2.3456 | aux 1.0012 | z 0.0000 | gnorm 1.23 | lr 3.00e-03 | 12345 tok/s | MFU 12.3% | imb 1.50");
  m.dropped_fraction = 0.031;
  EXPECT_TRUE(format_step_line(m).ends_with("| imb 1.50 | drop 3.1%")) << format_step_line(m);
  StepMetrics dense = sample();
  dense.tokens_per_expert.clear();
  EXPECT_EQ(format_step_line(dense).find("imb"), std::string::npos);
}

TEST(Metrics, JsonlAppendsOneObjectPerStep) {
  const auto dir = std::filesystem::temp_directory_path() / ("foldmoe_metrics_test_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  {
    MetricsWriter w((dir / "run").string());
    StepMetrics m = sample();
    m.task_tokens_per_expert["add"] = {{1, 0, 1, 0}, {0, 1, 1, 0}};
    m.aux_loss_per_layer["aux_loss"] = {1.0, 1.01};
    m.extra["reward"] = 0.5;
    w.write(m);
    // Flushed per line: readable before the writer closes.
    std::ifstream in(w.path());
    std::string line;
    ASSERT_TRUE(std::getline(in, line));
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["step"], 12);
    EXPECT_DOUBLE_EQ(j["lm_loss"].get<double>(), 2.34561);
    EXPECT_DOUBLE_EQ(j["lr"].get<double>(), 3e-3);
    EXPECT_DOUBLE_EQ(j["mfu"].get<double>(), 0.1234);
    EXPECT_DOUBLE_EQ(j["expert_imbalance"].get<double>(), 1.5);
    EXPECT_EQ(j["tokens_per_expert"], nlohmann::json({{4, 2, 1, 1}, {2, 2, 2, 2}}));
    EXPECT_EQ(j["task_tokens_per_expert"]["add"][1], nlohmann::json({0, 1, 1, 0}));
    EXPECT_EQ(j["aux_loss_per_layer"]["aux_loss"][1], 1.01);
    EXPECT_EQ(j["reward"], 0.5);
    m.step = 13;
    m.task_tokens_per_expert.clear();
    w.write(m);
  }
  {
    MetricsWriter again((dir / "run").string());  // appends (resume)
    StepMetrics m = sample();
    m.step = 14;
    again.write(m);
  }
  std::ifstream in(dir / "run" / "metrics.jsonl");
  std::string line;
  std::vector<int> steps;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    steps.push_back(j["step"].get<int>());
    if (steps.back() == 13) {
      EXPECT_FALSE(j.contains("task_tokens_per_expert"));
    }
  }
  EXPECT_EQ(steps, (std::vector<int>{12, 13, 14}));
  std::filesystem::remove_all(dir);
}

TEST(Metrics, ProgressText) {
  EXPECT_EQ(format_progress(0, 300, 0.0, 10), "[          ]   0/300   0.0%  ETA --");
  EXPECT_EQ(format_progress(150, 300, 30.0, 10), "[=====>    ] 150/300  50.0%  ETA 30s");
  EXPECT_EQ(format_progress(100, 300, 60.0, 10), "[===>      ] 100/300  33.3%  ETA 2m00s");
  EXPECT_EQ(format_progress(300, 300, 60.0, 10), "[==========] 300/300 100.0%  ETA 0s");
}

TEST(Metrics, ProgressBarSilentWhenNotATerminal) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    ProgressBar bar(10, "auto", f);  // a file is not a TTY
    EXPECT_FALSE(bar.active());
    bar.update(3);
    bar.finish();
  }
  EXPECT_EQ(std::ftell(f), 0L);
  {
    ProgressBar off(10, "off", f);
    EXPECT_FALSE(off.active());
    off.log_line("hello");  // plain lines still print
  }
  EXPECT_EQ(std::ftell(f), 6L);
  {
    ProgressBar on(10, "on", f);  // forced on
    EXPECT_TRUE(on.active());
    on.update(5);
    on.log_line("x");
  }
  std::rewind(f);
  char buf[512] = {};
  const size_t n = std::fread(buf, 1, sizeof(buf) - 1, f);
  const std::string s(buf, n);
  EXPECT_NE(s.find("\r"), std::string::npos);
  EXPECT_NE(s.find("5/10"), std::string::npos);
  EXPECT_NE(s.find("x\n"), std::string::npos);
  std::fclose(f);
}
