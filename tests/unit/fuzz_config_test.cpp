// Fuzz of the configuration readers: seeded mutations (tests/unit/fuzz_mutator.h) of valid TOML
// files and of `--section.key=value` flags. Every case must end in a UserError or a configuration
// that validates; any other exception, a crash (ASan/UBSan in scripts/test.sh) or a hang fails.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "config/config_fields.h"
#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/toml_writer.h"
#include "config/validate.h"
#include "core/check.h"
#include "fuzz_mutator.h"

using namespace foldmoe;
using foldmoe::fuzz::Mutator;
using foldmoe::fuzz::Syntax;

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in) << path;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The valid inputs the mutations start from: the documented defaults and the shipped configs.
std::vector<std::string> seed_files() {
  const std::string root = FOLDMOE_SOURCE_DIR;
  std::vector<std::string> out = {slurp(root + "/tests/unit/data/default_config.toml")};
  for (const char* f : {"bench-small.toml", "folded-8rank.toml", "rl-grpo.toml", "rl-pretrain.toml"})
    out.push_back(slurp(root + "/configs/" + f));
  return out;
}

struct Tally {
  int valid = 0, user_errors = 0;
  std::vector<std::string> failures;  // anything but UserError: "case N: what"

  template <typename F>
  void run(int case_no, F&& f) {
    try {
      f();
      ++valid;
    } catch (const UserError& e) {
      ++user_errors;
      if (std::string(e.what()).empty()) failures.push_back("case " + std::to_string(case_no) + ": empty message");
    } catch (const std::exception& e) {
      failures.push_back("case " + std::to_string(case_no) + ": " + typeid(e).name() + ": " + e.what());
    }
  }
  void expect_clean(int cases) const {
    std::printf("fuzz: %d cases: %d valid, %d UserError, %zu other\n", cases, valid, user_errors, failures.size());
    EXPECT_EQ(valid + user_errors + int(failures.size()), cases);
    for (size_t i = 0; i < failures.size() && i < 10; ++i) ADD_FAILURE() << failures[i];
    EXPECT_TRUE(failures.empty()) << failures.size() << " cases ended in neither success nor UserError";
    // Both outcomes occur: the mutations reach past the parser, and they do break inputs.
    EXPECT_GT(valid, cases / 50) << "too few mutated inputs were valid";
    EXPECT_GT(user_errors, cases / 4) << "too few mutated inputs were refused";
  }
};

}  // namespace

TEST(FuzzConfig, MutatedTomlFilesEndInUserErrorOrAValidConfig) {
  const std::vector<std::string> seeds = seed_files();
  constexpr int kCases = 1600;
  Tally t;
  for (int i = 0; i < kCases; ++i) {
    Mutator m(uint64_t(i) + 1, Syntax::Toml);
    const std::string text = m.mutate(seeds[size_t(i) % seeds.size()]);
    t.run(i, [&] {
      const Config c = config_from_toml(text, "fuzz.toml");
      validate(c);
      // A configuration that validates prints as TOML that reads back as the same configuration.
      EXPECT_EQ(config_from_toml(config_to_toml(c), "printed.toml"), c) << "case " << i;
    });
  }
  t.expect_clean(kCases);
}

TEST(FuzzConfig, MutatedFlagsEndInUserErrorOrAValidConfig) {
  const auto fields = config_fields();
  const Config defaults;
  constexpr int kCases = 900;
  Tally t;
  for (int i = 0; i < kCases; ++i) {
    Mutator m(uint64_t(i) + 100000, Syntax::Flag);
    std::vector<std::string> flags;
    for (uint64_t k = 0, n = 1 + m.below(3); k < n; ++k) {
      const ConfigField& f = fields[m.below(fields.size())];
      std::string value;
      switch (m.below(4)) {
        case 0:
          value = field_value_toml(f, defaults);
          break;  // the default, unchanged
        case 1:
          value = m.mutate(field_value_toml(f, defaults));
          break;  // mutated
        case 2:
          value = m.bad_value();
          break;
        default:
          value = m.nesting();
          break;
      }
      std::string flag = f.flag() + "=" + value;
      if (m.below(8) == 0) flag = m.mutate(flag);  // the key itself damaged
      flags.push_back(flag);
    }
    t.run(i, [&] {
      Config c;
      apply_overrides(c, flags);
      validate(c);
    });
  }
  t.expect_clean(kCases);
}

TEST(FuzzConfig, OversizedModelsAreRefusedByRuleNotByTheAllocator) {
  // The sizes of the issue that ended in std::bad_alloc, overflow or minutes of registration.
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--model.hidden=100000000", "--model.heads=1", "--model.kv_heads=1"},
        {"--train.seq_len=10000000"},
        {"--moe.num_experts=100000"},
        {"--model.ffn=2000000000", "--model.hidden=2000000000"},
        {"--train.micro_batch=2000000000", "--train.seq_len=2000000000"}}) {
    Config c;
    apply_overrides(c, flags);
    try {
      validate(c);
      ADD_FAILURE() << "accepted " << flags[0];
    } catch (const UserError& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(msg.find("error A4") != std::string::npos || msg.find("error A5") != std::string::npos) << msg;
    }
  }
}

TEST(FuzzConfig, TableHeadersWithoutAKeyAreSyntaxErrors) {
  // toml++ reads these with undefined behaviour (an assert in debug builds); they are refused first.
  for (const char* text : {"[[[1]]]\n", "[model]\nlayers = 2\n[+x]\n", "[\n", "  [[ .a]]\n", "[[\r\n", "[{a=1}]\n"}) {
    try {
      config_from_toml(text, "bad.toml");
      ADD_FAILURE() << "accepted " << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("bad.toml:"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("TOML syntax error"), std::string::npos) << e.what();
    }
  }
  // Non-ASCII outside strings and comments (toml++ has no whitespace answer for it).
  for (const char* text : {"[model]\nlayers = 2\xc3\xa9\n", "[model]\n\xc3\xa9 = 1\n", "[mod\xc3\xa9l]\n",
                           "[train]\nsteps =\xc2\xa1 3\n"}) {
    try {
      config_from_toml(text, "utf8.toml");
      ADD_FAILURE() << "accepted " << text;
    } catch (const UserError& e) {
      EXPECT_NE(std::string(e.what()).find("utf8.toml:"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("TOML syntax error"), std::string::npos) << e.what();
    }
  }
  // UTF-8 in strings and comments is kept; a '[' line inside a multi-line string is no header.
  const Config utf8 = config_from_toml(
      "# r\xc3\xa9glages\n[train]\nrun_dir = \"runs/\xc3\xa9t\xc3\xa9\"  # \xc3\xa9\n[data]\nsource = '''\n[+x\n'''\n",
      "utf8.toml");
  EXPECT_EQ(utf8.train.run_dir, "runs/\xc3\xa9t\xc3\xa9");
  EXPECT_EQ(utf8.data.source, "[+x\n");
  // Headers with keys, quoted keys and toml++'s own errors are left to toml++.
  EXPECT_EQ(config_from_toml("[ model ]\nlayers = 3\n[\"train\"]\nsteps = 5\n", "ok.toml").model.layers, 3);
  EXPECT_THROW(config_from_toml("[ [model]]\n", "spaced.toml"), UserError);
  EXPECT_THROW(config_from_toml("[]\n", "empty.toml"), UserError);
}
