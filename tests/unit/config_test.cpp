#include "config/config.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>

#include "config/config_fields.h"
#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/toml_writer.h"
#include "config/validate.h"
#include "core/check.h"

using namespace foldmoe;

namespace {

// The UserError message of f(), or "" if it does not throw.
template <typename Fn>
std::string error_of(Fn&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

std::string validate_error(const Config& c) {
  return error_of([&] { validate(c); });
}

std::string toml_error(const std::string& text) {
  return error_of([&] { config_from_toml(text, "test.toml"); });
}

Config moe_config() {
  Config c;
  c.moe.num_experts = 8;
  c.moe.topk = 2;
  return c;
}

// Expects `c` to fail validation with a message containing every needle.
void expect_invalid(const Config& c, std::initializer_list<std::string> needles) {
  const std::string msg = validate_error(c);
  ASSERT_FALSE(msg.empty()) << "expected a validation error containing " << *needles.begin();
  for (const std::string& n : needles)
    EXPECT_NE(msg.find(n), std::string::npos) << "missing `" << n << "` in:\n" << msg;
  EXPECT_NE(msg.find("fix:"), std::string::npos) << msg;
}

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kGolden = std::string(FOLDMOE_SOURCE_DIR) + "/tests/unit/data/default_config.toml";

// The documented defaults (README, docs/rules.md): the built-in tiny MoE, written down by hand.
TEST(Config, DefaultsAreTheBuiltInTinyMoE) {
  const Config d;
  EXPECT_EQ(d.model.layers, 2);
  EXPECT_EQ(d.model.hidden, 96);
  EXPECT_EQ(d.model.heads, 4);
  EXPECT_EQ(d.model.kv_heads, 2);
  EXPECT_EQ(d.model.head_dim, 0);
  EXPECT_EQ(d.model.ffn, 192);
  EXPECT_EQ(d.model.vocab, 0);
  EXPECT_EQ(d.model.rope_theta, 10000.0);
  EXPECT_EQ(d.model.norm_eps, 1e-5);
  EXPECT_EQ(d.model.init_std, 0.02);
  EXPECT_EQ(d.moe.num_experts, 8);
  EXPECT_EQ(d.moe.topk, 2);
  EXPECT_EQ(d.moe.ffn_hidden_size, 96);
  EXPECT_EQ(d.moe.layer_freq, std::vector<int>{1});
  EXPECT_EQ(d.moe.score_function, "softmax");
  EXPECT_EQ(d.moe.load_balancing_type, std::vector<std::string>{"aux_loss"});
  EXPECT_EQ(d.moe.aux_loss_coeff, std::vector<double>{0.01});
  EXPECT_EQ(d.moe.z_loss_coeff, std::optional<double>(0.001));
  EXPECT_FALSE(d.moe.capacity_factor.has_value());  // dropless
  EXPECT_EQ(d.moe.dispatcher, "alltoall");
  EXPECT_EQ(d.parallel.tp * d.parallel.cp * d.parallel.pp * d.parallel.ep, 1);
  EXPECT_EQ(d.parallel.order, "tp-cp-ep-dp-pp");
  EXPECT_EQ(d.train.steps, 300);
  EXPECT_EQ(d.train.micro_batch, 16);
  EXPECT_EQ(d.train.micro_batches, 1);
  EXPECT_EQ(d.train.seq_len, 64);
  EXPECT_EQ(d.train.seed, 1234);
  EXPECT_EQ(d.train.run_dir, "runs/tiny-moe");
  EXPECT_EQ(d.optim.lr, 0.003);
  EXPECT_EQ(d.optim.min_lr, 0.0003);
  EXPECT_EQ(d.optim.warmup_steps, 20);
  EXPECT_EQ(d.optim.schedule, "cosine");
  EXPECT_EQ(d.optim.weight_decay, 0.1);
  EXPECT_EQ(d.optim.grad_clip, 1.0);
  EXPECT_EQ(d.data.tasks, (std::vector<std::string>{"add", "reverse", "sort", "lookup"}));
  EXPECT_EQ(d.rl.preset, rl::RlPreset::Hapo);
  EXPECT_EQ(d.rl.optim.beta2, 0.999);
  EXPECT_EQ(d.model.max_seq_len, 65536);  // docs/long-runs.md
  EXPECT_EQ(d.parallel.timeout_s, 600.0);
  EXPECT_FALSE(d.train.skip_memory_check);
}

// `foldmoe config` prints exactly the hand-written golden file for the defaults, and the golden
// file reads back to the defaults.
TEST(Config, DefaultsDumpEqualsTheGoldenFile) {
  const std::string golden = read_file(kGolden);
  ASSERT_FALSE(golden.empty()) << kGolden;
  EXPECT_EQ(config_to_toml(Config{}), golden);
  EXPECT_EQ(config_from_toml(golden, kGolden), Config{});
}

// Whatever path a run takes, unspecified keys get the same defaults: a file holding one key is the
// built-in tiny MoE with that key changed (not a dense model).
TEST(Config, OneKeyFileResolvesToTheBuiltInDefaults) {
  const Config c = config_from_toml("[train]\nsteps = 10\n", "t.toml");
  Config want;
  want.train.steps = 10;
  EXPECT_EQ(c, want);
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.model.hidden, 96);
  EXPECT_EQ(validate_error(c), "");
  Config flags;
  apply_overrides(flags, {"--train.steps=10"});
  EXPECT_EQ(flags, c);
}

TEST(Config, ConfigFileMustBeAReadableFile) {
  const std::string dir = std::filesystem::temp_directory_path().string();
  std::string e = error_of([&] { load_config_file(dir); });
  EXPECT_NE(e.find("'" + dir + "' is a directory"), std::string::npos) << e;
  EXPECT_NE(e.find("fix:"), std::string::npos) << e;
  e = error_of([] { load_config_file("/nonexistent/cfg.toml"); });
  EXPECT_NE(e.find("'/nonexistent/cfg.toml' does not exist"), std::string::npos) << e;
  EXPECT_EQ(load_config_file(kGolden), Config{});
}

TEST(Config, KeysListing) {
  const std::string help = config_help();
  EXPECT_NE(help.find("--moe.topk=<integer>"), std::string::npos) << help;
  EXPECT_NE(help.find("--moe.capacity_factor=<float or none>"), std::string::npos);
  EXPECT_NE(help.find("--rl.loss.aggregation=<token-mean | seq-mean-token-mean | seq-mean-token-sum | "
                      "seq-mean-token-sum-norm>"),
            std::string::npos)
      << help;
  EXPECT_NE(help.find("--rl.optim.betas=<two floats>"), std::string::npos);
  EXPECT_NE(help.find("(default 8)"), std::string::npos);
  EXPECT_EQ(help.find("sinkhorn"), std::string::npos);
  // One line per key: the table has every field exactly once.
  size_t flags = 0;
  for (size_t at = help.find("\n  --"); at != std::string::npos; at = help.find("\n  --", at + 1)) ++flags;
  EXPECT_EQ(flags, config_fields().size());
  EXPECT_EQ(find_config_field("moe", "nope"), nullptr);
}

TEST(Config, DefaultsAreValid) {
  EXPECT_EQ(validate_error(Config{}), "");
  EXPECT_EQ(validate_error(moe_config()), "");
}

TEST(Config, NonDefaultValuesReadBack) {
  Config c = moe_config();
  c.model.init_std = 0.1 + 0.2;  // not exactly representable in short decimal
  c.moe.layer_freq = {1, 0, 1, 1};
  c.model.layers = 4;
  c.moe.z_loss_coeff.reset();
  c.moe.capacity_factor = 1.25;
  c.train.run_dir = "runs/with \"quotes\" and \\ backslash\tand tab";
  c.rl.router_replay.mode = rl::RouterReplayMode::Off;
  const std::string text = config_to_toml(c);
  EXPECT_NE(text.find("\nz_loss_coeff = \"none\"  #"), std::string::npos) << text;  // unset, default set
  EXPECT_NE(text.find("\n# num_groups = (unset)  #"), std::string::npos) << text;   // unset like the default
  EXPECT_NE(text.find("\nrun_dir = \"runs/with \\\"quotes\\\" and \\\\ backslash\\tand tab\"  #"), std::string::npos)
      << text;
  EXPECT_NE(text.find("\ninit_std = 0.30000000000000004  #"), std::string::npos) << text;
  EXPECT_NE(text.find("\nlayer_freq = [1, 0, 1, 1]  #"), std::string::npos) << text;
  EXPECT_NE(text.find("\nrouter_replay.mode = \"off\"  #"), std::string::npos) << text;
  EXPECT_EQ(config_from_toml(text, "dump"), c);
}

TEST(Config, ParsesSectionsAndTypes) {
  const Config c = config_from_toml(R"(
[model]
layers = 4
rope_theta = 10000    # an integer is fine for a float key
[moe]
num_experts = 4
capacity_factor = 1
load_balancing_type = "seq_aux_loss"
aux_loss_coeff = 0.01
z_loss_coeff = "none"
[train]
seed = 9000000000
)",
                                    "t.toml");
  EXPECT_EQ(c.model.layers, 4);
  EXPECT_EQ(c.model.rope_theta, 10000.0);
  EXPECT_EQ(c.moe.capacity_factor, std::optional<double>(1.0));
  EXPECT_EQ(c.moe.load_balancing_type, std::vector<std::string>{"seq_aux_loss"});
  EXPECT_EQ(c.moe.aux_loss_coeff, std::vector<double>{0.01});
  EXPECT_FALSE(c.moe.z_loss_coeff.has_value());
  EXPECT_EQ(c.train.seed, 9000000000LL);
}

TEST(Config, LayerFreqIntegerAndList) {
  Config c = config_from_toml("[model]\nlayers = 6\n[moe]\nnum_experts = 4\nlayer_freq = 2\n", "t");
  EXPECT_EQ(c.moe.layer_freq, std::vector<int>{2});
  std::vector<bool> moe;
  for (int i = 0; i < 6; ++i) moe.push_back(c.is_moe_layer(i));
  EXPECT_EQ(moe, (std::vector<bool>{true, false, true, false, true, false}));
  EXPECT_EQ(validate_error(c), "");

  c = config_from_toml("[model]\nlayers = 4\n[moe]\nnum_experts = 4\nlayer_freq = [0, 1, 1, 0]\n", "t");
  EXPECT_EQ(c.moe.layer_freq, (std::vector<int>{0, 1, 1, 0}));
  EXPECT_FALSE(c.is_moe_layer(0));
  EXPECT_TRUE(c.is_moe_layer(1));
  EXPECT_TRUE(c.is_moe_layer(2));
  EXPECT_FALSE(c.is_moe_layer(3));
  EXPECT_EQ(validate_error(c), "");

  c.moe.num_experts = 0;  // dense: no MoE layer whatever layer_freq says
  for (int i = 0; i < 4; ++i) EXPECT_FALSE(c.is_moe_layer(i));

  c = moe_config();
  c.model.layers = 4;
  c.moe.layer_freq = {1, 0, 1};
  expect_invalid(c, {"L15", "layer_freq", "3 entries", "layers = 4"});
  c.moe.layer_freq = {1, 0, 2, 1};
  expect_invalid(c, {"L15", "layer_freq", "entry 2"});
  c.moe.layer_freq = {0};
  expect_invalid(c, {"L15", "layer_freq = 0"});
  EXPECT_NE(toml_error("[moe]\nlayer_freq = \"2\"\n").find("an integer or an array of integers"), std::string::npos);
}

TEST(Config, UnknownKeysSuggestNearest) {
  std::string msg = toml_error("[moe]\ntopkk = 2\n");
  EXPECT_EQ(msg, "config test.toml: unknown key [moe] topkk (did you mean `topk`?)");
  msg = toml_error("[model]\ntopk = 2\n");
  EXPECT_NE(msg.find("unknown key [model] topk (did you mean `[moe] topk`?)"), std::string::npos) << msg;
  msg = toml_error("[mode]\nlayers = 2\n");
  EXPECT_NE(msg.find("unknown section [mode] (did you mean `[model]`?)"), std::string::npos) << msg;
  msg = toml_error("layers = 2\n");
  EXPECT_NE(msg.find("outside any section"), std::string::npos) << msg;
  msg = toml_error("[moe]\nzzzzzzzzzz = 1\n");
  EXPECT_EQ(msg, "config test.toml: unknown key [moe] zzzzzzzzzz");
  msg = toml_error("[moe\n");
  EXPECT_NE(msg.find("TOML syntax error"), std::string::npos) << msg;
}

TEST(Config, TypeErrorsNameKeyExpectedAndGot) {
  std::string msg = toml_error("[moe]\ntopk = \"two\"\n");
  EXPECT_EQ(msg, "config test.toml: [moe] topk expects an integer, got string \"two\"");
  msg = toml_error("[model]\nrope_theta = true\n");
  EXPECT_NE(msg.find("[model] rope_theta expects a float, got bool true"), std::string::npos) << msg;
  msg = toml_error("[model]\nlayers = 2.5\n");
  EXPECT_NE(msg.find("[model] layers expects an integer, got float 2.5"), std::string::npos) << msg;
  msg = toml_error("[moe]\ncapacity_partition = [1, \"x\"]\n");
  EXPECT_NE(msg.find("[moe] capacity_partition[1] expects an integer, got string"), std::string::npos) << msg;
  msg = toml_error("[moe]\ncapacity_partition = 2\n");
  EXPECT_NE(msg.find("expects an array of integers, got integer 2"), std::string::npos) << msg;
  msg = toml_error("[moe]\ncapacity_factor = \"big\"\n");
  EXPECT_NE(msg.find("[moe] capacity_factor expects a float or \"none\""), std::string::npos) << msg;
  msg = toml_error("[train]\nper_token_loss = 1\n");
  EXPECT_NE(msg.find("[train] per_token_loss expects a bool"), std::string::npos) << msg;
  msg = toml_error("[model]\nlayers = 10000000000\n");
  EXPECT_NE(msg.find("out of the 32-bit integer range"), std::string::npos) << msg;
  msg = toml_error("[moe.sub]\nx = 1\n");
  EXPECT_NE(msg.find("unknown key [moe] sub"), std::string::npos) << msg;
}

TEST(Config, Overrides) {
  Config c;
  apply_overrides(c, {"--moe.num_experts=8", "--moe.topk=1", "--model.rope_theta=5e5", "--train.per_token_loss=true",
                      "--parallel.order=tp-cp-ep-pp-dp", "--moe.capacity_factor=1.5", "--moe.capacity_partition=[2,1]",
                      "--moe.aux_loss_coeff=0.01, 0.001", "--moe.load_balancing_type=[aux_loss, \"seq_aux_loss\"]",
                      "--data.tasks=add,sort", "--moe.layer_freq=2", "--moe.num_groups=4", "--train.run_dir=\"runs/x\"",
                      "--train.seed=-5"});
  EXPECT_EQ(c.moe.num_experts, 8);
  EXPECT_EQ(c.moe.topk, 1);
  EXPECT_EQ(c.model.rope_theta, 5e5);
  EXPECT_TRUE(c.train.per_token_loss);
  EXPECT_EQ(c.parallel.order, "tp-cp-ep-pp-dp");
  EXPECT_EQ(c.moe.capacity_factor, std::optional<double>(1.5));
  EXPECT_EQ(c.moe.capacity_partition, (std::vector<int>{2, 1}));
  EXPECT_EQ(c.moe.aux_loss_coeff, (std::vector<double>{0.01, 0.001}));
  EXPECT_EQ(c.moe.load_balancing_type, (std::vector<std::string>{"aux_loss", "seq_aux_loss"}));
  EXPECT_EQ(c.data.tasks, (std::vector<std::string>{"add", "sort"}));
  EXPECT_EQ(c.moe.layer_freq, std::vector<int>{2});
  EXPECT_EQ(c.moe.num_groups, std::optional<int>(4));
  EXPECT_EQ(c.train.run_dir, "runs/x");
  EXPECT_EQ(c.train.seed, -5);

  apply_overrides(c, {"--moe.capacity_factor=none", "--moe.num_groups=none", "--moe.capacity_partition=[]"});
  EXPECT_FALSE(c.moe.capacity_factor.has_value());
  EXPECT_FALSE(c.moe.num_groups.has_value());
  EXPECT_TRUE(c.moe.capacity_partition.empty());

  // Overrides apply in order; the last one wins.
  apply_overrides(c, {"--moe.topk=3", "--moe.topk=4"});
  EXPECT_EQ(c.moe.topk, 4);

  auto override_error = [&](const std::string& flag) { return error_of([&] { apply_overrides(c, {flag}); }); };
  EXPECT_EQ(override_error("--moe.topkk=3"),
            "override --moe.topkk=3: unknown key [moe] topkk (did you mean `--moe.topk`?)");
  EXPECT_NE(override_error("--model.topk=3").find("did you mean `--moe.topk`?"), std::string::npos);
  EXPECT_NE(override_error("--mo.topk=3").find("unknown section [mo]"), std::string::npos);
  EXPECT_EQ(override_error("--moe.topk=two"), "override --moe.topk=two: [moe] topk expects an integer, got `two`");
  EXPECT_NE(override_error("--moe.topk=3x").find("expects an integer"), std::string::npos);
  EXPECT_NE(override_error("--moe.capacity_factor=lots").find("expects a float or none"), std::string::npos);
  EXPECT_NE(override_error("--moe.capacity_partition=[1,x]").find("expects a list of integers, got `x`"),
            std::string::npos);
  EXPECT_NE(override_error("--train.per_token_loss=maybe").find("expects a bool"), std::string::npos);
  EXPECT_NE(override_error("--moe.topk").find("expected --section.key=value"), std::string::npos);
  EXPECT_NE(override_error("--topk=2").find("expected --section.key=value"), std::string::npos);
  // Non-finite numbers parse (as TOML does) and are refused by validation (V2).
  Config inf;
  apply_overrides(inf, {"--optim.lr=inf"});
  EXPECT_TRUE(std::isinf(inf.optim.lr));
}

TEST(Config, ModelRules) {
  auto with = [](auto edit) {
    Config c;
    edit(c);
    return c;
  };
  expect_invalid(with([](Config& c) { c.model.layers = 0; }), {"[model] layers = 0", "> 0"});
  expect_invalid(with([](Config& c) { c.model.hidden = -1; }), {"[model] hidden = -1"});
  expect_invalid(with([](Config& c) { c.model.heads = 0; }), {"[model] heads = 0"});
  expect_invalid(with([](Config& c) { c.model.kv_heads = 0; }), {"[model] kv_heads = 0"});
  expect_invalid(with([](Config& c) { c.model.kv_heads = 3; }), {"heads = 4", "kv_heads = 3"});
  expect_invalid(with([](Config& c) { c.model.hidden = 66; }), {"hidden = 66", "heads = 4", "head_dim"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.model.hidden = 66;
              c.model.head_dim = 16;
            })),
            "");
  expect_invalid(with([](Config& c) { c.model.head_dim = 15; }), {"head_dim = 15", "even"});
  expect_invalid(with([](Config& c) {
                   c.model.hidden = 24;
                   c.model.heads = 8;
                   c.model.kv_heads = 8;
                 }),
                 {"head dimension 3", "RoPE"});
  expect_invalid(with([](Config& c) { c.model.ffn = 0; }), {"[model] ffn = 0"});
  expect_invalid(with([](Config& c) { c.model.vocab = -3; }), {"[model] vocab = -3"});
  expect_invalid(with([](Config& c) { c.model.norm_eps = 0; }), {"norm_eps"});
  expect_invalid(with([](Config& c) { c.model.qk_norm = "per_head"; }), {"qk_norm = \"per_head\"", "head | full"});
  expect_invalid(with([](Config& c) { c.model.rope_scaling = "dynamic"; }), {"rope_scaling = \"dynamic\""});
  expect_invalid(with([](Config& c) {
                   c.model.rope_scaling = "linear";
                   c.model.rope_scaling_factor = 0.5;
                 }),
                 {"rope_scaling_factor = 0.5", ">= 1"});
  expect_invalid(with([](Config& c) { c.model.rope_scaling = "yarn"; }), {"rope_original_max_position", "got 0"});
  expect_invalid(with([](Config& c) {
                   c.model.rope_scaling = "llama3";
                   c.model.rope_original_max_position = 32;
                   c.model.rope_low_freq_factor = 4;
                 }),
                 {"rope_low_freq_factor = 4", "0 < low < high"});
  expect_invalid(with([](Config& c) {
                   c.model.rope_scaling = "yarn";
                   c.model.rope_original_max_position = 32;
                   c.model.rope_beta_slow = 40;
                 }),
                 {"rope_beta_slow = 40", "beta_slow < beta_fast"});
  expect_invalid(with([](Config& c) { c.model.rope_attention_factor = 1.2; }),
                 {"rope_attention_factor = 1.2", "only by rope_scaling = \"yarn\""});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.model.qk_norm = "full";
              c.model.attention_bias = true;
              c.model.tie_embeddings = true;
              c.model.rope_scaling = "yarn";
              c.model.rope_scaling_factor = 4;
              c.model.rope_original_max_position = 16;
              c.model.rope_attention_factor = 1.1;
            })),
            "");
}

TEST(Config, MoERules) {
  auto with = [](auto edit) {
    Config c = moe_config();
    edit(c);
    return c;
  };
  expect_invalid(with([](Config& c) { c.moe.num_experts = -1; }), {"num_experts = -1"});
  expect_invalid(with([](Config& c) { c.moe.topk = 9; }), {"M1", "topk = 9", "num_experts = 8"});
  expect_invalid(with([](Config& c) { c.moe.topk = 0; }), {"M1", "topk = 0"});
  // Dense models ignore topk etc.
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.moe.num_experts = 0;
              c.moe.topk = 99;
            })),
            "");
  expect_invalid(with([](Config& c) { c.parallel.ep = 3; }), {"layout error L6", "ep = 3", "num_experts = 8"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 4; }), {"M3", "num_groups = 4", "group_topk = none"});
  expect_invalid(with([](Config& c) {
                   c.moe.num_groups = 3;
                   c.moe.group_topk = 1;
                 }),
                 {"M3", "num_groups = 3"});
  expect_invalid(with([](Config& c) {
                   c.moe.num_groups = 4;
                   c.moe.group_topk = 5;
                 }),
                 {"M3", "group_topk = 5"});
  expect_invalid(with([](Config& c) {
                   c.moe.num_groups = 4;
                   c.moe.group_topk = 1;
                   c.moe.topk = 3;
                 }),
                 {"M3", "topk = 3"});
  expect_invalid(with([](Config& c) {
                   c.moe.num_groups = 4;
                   c.moe.group_topk = 3;
                 }),
                 {"M3", "topk = 2", "group_topk = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.moe.num_groups = 4;
              c.moe.group_topk = 2;
            })),
            "");
  expect_invalid(with([](Config& c) { c.moe.enable_expert_bias = true; }), {"M4", "enable_expert_bias", "sigmoid"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.moe.enable_expert_bias = true;
              c.moe.score_function = "sigmoid";
            })),
            "");
  // sinkhorn is not implemented: refused like any unknown balancing type.
  expect_invalid(with([](Config& c) {
                   c.moe.load_balancing_type = {"sinkhorn"};
                   c.moe.aux_loss_coeff = {0.0};
                 }),
                 {"M8", "\"sinkhorn\" is unknown"});
  expect_invalid(with([](Config& c) { c.moe.capacity_factor = 0.0; }), {"M13", "capacity_factor = 0"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.capacity_factor = -1.0; })), "");  // negative = dropless
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.capacity_factor = 0.5; })), "");
  expect_invalid(with([](Config& c) { c.moe.pad_to_capacity = true; }), {"M6", "pad_to_capacity"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.moe.pad_to_capacity = true;
              c.moe.capacity_factor = 1.0;
            })),
            "");
  expect_invalid(with([](Config& c) { c.moe.drop_policy = "random"; }), {"M7", "drop_policy", "random"});
  expect_invalid(with([](Config& c) {
                   c.moe.aux_loss_coeff = {0.1, 0.2};
                 }),
                 {"M8", "load_balancing_type", "aux_loss_coeff"});
  expect_invalid(with([](Config& c) {
                   c.moe.load_balancing_type = {"aux_loss", "aux_loss"};
                   c.moe.aux_loss_coeff = {0, 0};
                 }),
                 {"M8", "twice"});
  expect_invalid(with([](Config& c) { c.moe.aux_loss_coeff = {-0.1}; }), {"M8", "aux_loss_coeff", "-0.1"});
  expect_invalid(with([](Config& c) { c.moe.load_balancing_type = {"magic"}; }), {"M8", "magic"});
  expect_invalid(with([](Config& c) { c.parallel.etp = 5; }), {"layout error L10", "etp = 5", "F_moe = 96"});
  expect_invalid(with([](Config& c) {
                   c.moe.ffn_hidden_size = 31;
                   c.parallel.tp = 2;
                 }),
                 {"layout error L10", "F_moe = 31", "etp = 2"});
  expect_invalid(with([](Config& c) {
                   c.parallel.tp = 2;
                   c.parallel.sequence_parallel = false;
                 }),
                 {"layout error L7", "tp = 2", "sequence_parallel"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.parallel.tp = 2; })), "");
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.model.tie_embeddings = true;
              c.parallel.pp = 2;
            })),
            "");
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {2}; }), {"M11", "capacity_partition"});
  expect_invalid(with([](Config& c) {
                   c.moe.capacity_partition = {2, 1};
                   c.parallel.tp = 2;
                 }),
                 {"M11", "tp = 2"});
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {1, 3}; }), {"M11", "seq_len = 64", "2*cp = 6"});
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {3, 1}; }), {"M11", "tp = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.moe.capacity_partition = {2, 2};
              c.moe.capacity_factor = 1.0;
            })),
            "");
  expect_invalid(with([](Config& c) { c.moe.score_function = "relu"; }), {"score_function", "relu"});
  expect_invalid(with([](Config& c) { c.moe.dispatcher = "p2p"; }), {"dispatcher", "p2p"});
  expect_invalid(with([](Config& c) { c.moe.shared_expert_gate = true; }), {"M14", "shared_expert_gate"});
  expect_invalid(with([](Config& c) { c.moe.z_loss_coeff = -1.0; }), {"z_loss_coeff"});
  expect_invalid(with([](Config& c) { c.moe.input_jitter_eps = 1.5; }), {"input_jitter_eps"});
}

TEST(Config, ParallelRulesWithoutWorldSize) {
  auto with = [](auto edit) {
    Config c = moe_config();
    edit(c);
    return c;
  };
  expect_invalid(with([](Config& c) { c.parallel.tp = 0; }), {"L1", "tp = 0"});
  expect_invalid(with([](Config& c) { c.parallel.pp = -1; }), {"L1", "pp = -1"});
  expect_invalid(with([](Config& c) { c.parallel.etp = -1; }), {"L1", "etp = -1"});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-ep-dp"; }),
                 {"L2", "tp-cp-ep-dp", "missing token \"pp\""});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-ep-dp-pp-tp"; }), {"L2", "duplicate token \"tp\""});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-xp-dp-pp"; }), {"L2", "unknown token \"xp\""});
  expect_invalid(with([](Config& c) { c.parallel.cp = 3; }), {"L8", "seq_len = 64", "cp"});
  expect_invalid(with([](Config& c) {
                   c.parallel.tp = 4;
                   c.model.heads = 4;
                   c.model.kv_heads = 4;
                   c.train.seq_len = 6;
                 }),
                 {"L9", "tp = 4"});
  expect_invalid(with([](Config& c) {
                   c.moe.num_experts = 0;
                   c.parallel.tp = 2;
                   c.model.ffn = 127;
                 }),
                 {"L10", "ffn = 127"});
  expect_invalid(with([](Config& c) { c.parallel.tp = 4; }), {"L11", "kv_heads = 2", "tp = 4"});
  expect_invalid(with([](Config& c) {
                   c.model.layers = 3;
                   c.parallel.pp = 2;
                 }),
                 {"L12", "layers = 3", "pp = 2"});
  expect_invalid(with([](Config& c) { c.parallel.vpp = 2; }), {"L12", "vpp = 2"});
  expect_invalid(with([](Config& c) {
                   c.model.layers = 4;
                   c.parallel.pp = 2;
                   c.parallel.vpp = 2;
                   c.train.micro_batches = 3;
                 }),
                 {"L14", "micro_batches = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) {
              c.model.layers = 4;
              c.parallel.pp = 2;
              c.parallel.vpp = 2;
              c.train.micro_batches = 4;
            })),
            "");
}

TEST(Config, TrainOptimDataLogRules) {
  auto with = [](auto edit) {
    Config c;
    edit(c);
    return c;
  };
  expect_invalid(with([](Config& c) { c.train.steps = -1; }), {"[train] steps = -1"});
  expect_invalid(with([](Config& c) { c.train.micro_batch = 0; }), {"[train] micro_batch = 0"});
  expect_invalid(with([](Config& c) { c.train.micro_batches = 0; }), {"[train] micro_batches = 0"});
  expect_invalid(with([](Config& c) { c.train.seq_len = 1; }), {"[train] seq_len = 1"});
  expect_invalid(with([](Config& c) { c.optim.lr = 0; }), {"[optim] lr = 0"});
  expect_invalid(with([](Config& c) { c.optim.beta1 = 1.0; }), {"[optim] beta1 = 1"});
  expect_invalid(with([](Config& c) { c.optim.beta2 = -0.1; }), {"[optim] beta2 = -0.1"});
  expect_invalid(with([](Config& c) { c.optim.schedule = "linear"; }), {"[optim] schedule", "linear"});
  expect_invalid(with([](Config& c) { c.optim.grad_clip = -1; }), {"[optim] grad_clip = -1"});
  expect_invalid(with([](Config& c) { c.optim.warmup_steps = -1; }), {"[optim] warmup_steps = -1"});
  expect_invalid(with([](Config& c) { c.optim.min_lr = 1.0; }), {"[optim] min_lr = 1"});
  expect_invalid(with([](Config& c) { c.data.tasks = {"add", "copy"}; }), {"[data] tasks", "copy"});
  expect_invalid(with([](Config& c) { c.data.tasks = {}; }), {"[data] tasks"});
  expect_invalid(with([](Config& c) { c.log.progress = "maybe"; }), {"[log] progress", "maybe"});
  expect_invalid(with([](Config& c) { c.log.interval = 0; }), {"[log] interval = 0"});
  // Several violations are reported together.
  const std::string msg = validate_error(with([](Config& c) {
    c.train.steps = -1;
    c.optim.lr = 0;
  }));
  EXPECT_NE(msg.find("2 configuration errors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("steps"), std::string::npos);
  EXPECT_NE(msg.find("lr"), std::string::npos);
}

// Each rule of docs/rules.md, as the id an error prints and a value that breaks it.
TEST(Config, EveryRuleHasItsId) {
  struct Case {
    const char* id;
    void (*edit)(Config&);
    const char* needle;
  };
  const Case cases[] = {
      {"config error V1", [](Config& c) { c.model.hidden = 0; }, "[model] hidden = 0 must be > 0"},
      {"config error V1", [](Config& c) { c.model.rope_theta = -1; }, "[model] rope_theta = -1"},
      {"config error V1", [](Config& c) { c.model.init_std = 0; }, "[model] init_std = 0"},
      {"config error V1", [](Config& c) { c.model.head_dim = -2; }, "[model] head_dim = -2"},
      {"config error V1", [](Config& c) { c.moe.bias_update_rate = -1e-3; }, "[moe] bias_update_rate"},
      {"config error V1", [](Config& c) { c.moe.topk_scaling_factor = 0.0; }, "[moe] topk_scaling_factor = 0"},
      {"config error V1", [](Config& c) { c.moe.ffn_hidden_size = -1; }, "[moe] ffn_hidden_size = -1"},
      {"config error V1", [](Config& c) { c.train.seq_len = 0; }, "[train] seq_len = 0"},
      {"config error V1", [](Config& c) { c.train.micro_batch = -4; }, "[train] micro_batch = -4"},
      {"config error V1", [](Config& c) { c.train.global_batch = -1; }, "[train] global_batch = -1"},
      {"config error V1", [](Config& c) { c.parallel.bucket_size = 0; }, "[parallel] bucket_size = 0"},
      {"config error V1", [](Config& c) { c.optim.lr = -3e-3; }, "[optim] lr = -0.003 must be > 0"},
      {"config error V1", [](Config& c) { c.optim.eps = 0; }, "[optim] eps = 0"},
      {"config error V1", [](Config& c) { c.optim.weight_decay = -0.1; }, "[optim] weight_decay = -0.1"},
      {"config error V1", [](Config& c) { c.data.eval_samples = -1; }, "[data] eval_samples = -1"},
      {"config error V1", [](Config& c) { c.checkpoint.interval = -1; }, "[checkpoint] interval = -1"},
      {"config error V2", [](Config& c) { c.optim.lr = std::numeric_limits<double>::infinity(); },
       "[optim] lr = inf is not a finite number"},
      {"config error V2", [](Config& c) { c.optim.beta1 = std::nan(""); }, "[optim] beta1 = nan"},
      {"config error V2", [](Config& c) { c.moe.aux_loss_coeff = {INFINITY}; }, "[moe] aux_loss_coeff = inf"},
      {"config error V2", [](Config& c) { c.moe.capacity_factor = NAN; }, "[moe] capacity_factor = nan"},
      {"config error V2", [](Config& c) { c.rl.optim.beta2 = INFINITY; }, "[rl] optim.betas = [0.9, inf]"},
      {"config error V3", [](Config& c) { c.moe.dispatcher = "p2p"; },
       "[moe] dispatcher = \"p2p\" is not one of alltoall | allgather"},
      {"config error V3", [](Config& c) { c.train.recompute = "some"; }, "none | moe | full"},
      {"config error V3", [](Config& c) { c.parallel.cp_comm_type = "ring"; }, "p2p | all_gather"},
      {"config error V3", [](Config& c) { c.data.source = "web"; }, "[data] source = \"web\""},
      {"config error V4",
       [](Config& c) {
         c.data.tasks = {"add", "add"};
       },
       "lists \"add\" twice"},
      {"config error V4", [](Config& c) { c.data.tasks = {}; }, "[data] tasks is empty"},
      {"config error A1", [](Config& c) { c.model.kv_heads = 3; }, "heads = 4 is not divisible by kv_heads = 3"},
      {"config error A2", [](Config& c) { c.model.hidden = 98; }, "hidden = 98 is not divisible by heads = 4"},
      {"config error A3", [](Config& c) { c.model.head_dim = 15; }, "head dimension 15"},
      {"config error A6", [](Config& c) { c.model.rope_scaling = "llama3"; }, "needs rope_original_max_position"},
      {"config error T1", [](Config& c) { c.optim.min_lr = 0.01; }, "min_lr = 0.01 must satisfy min_lr <= lr = 0.003"},
      {"config error T2", [](Config& c) { c.train.run_dir = ""; }, "[train] run_dir is empty"},
      {"config error M13", [](Config& c) { c.moe.capacity_factor = 0.0; }, "capacity_factor = 0"},
      {"config error M14", [](Config& c) { c.moe.shared_expert_gate = true; }, "shared_expert_gate = true"},
      {"layout error L6", [](Config& c) { c.parallel.ep = 3; },
       "[parallel] ep = 3 does not divide [moe] num_experts = 8"},
      {"layout error L7",
       [](Config& c) {
         c.parallel.tp = 2;
         c.parallel.sequence_parallel = false;
       },
       "sequence_parallel"},
      {"layout error L13", [](Config& c) { c.train.global_batch = 20; }, "no such rule without a world size"},
  };
  for (const Case& k : cases) {
    Config c;
    k.edit(c);
    const std::string msg = validate_error(c);
    if (std::string(k.id) == "layout error L13") {  // needs the data-parallel size: not checked here
      EXPECT_EQ(msg, "");
      continue;
    }
    EXPECT_NE(msg.find(std::string(k.id) + ": "), std::string::npos) << k.id << " / " << k.needle << ":\n" << msg;
    EXPECT_NE(msg.find(k.needle), std::string::npos) << k.needle << ":\n" << msg;
    EXPECT_NE(msg.find("\n  fix: "), std::string::npos) << msg;
  }
}

// V2 holds for every float of the field table, whichever section it is in.
TEST(Config, EveryFloatFieldMustBeFinite) {
  int checked = 0;
  for (const ConfigField& f : config_fields()) {
    if (f.type != FieldType::Double && f.type != FieldType::OptDouble && f.type != FieldType::DoubleList &&
        f.type != FieldType::DoublePair)
      continue;
    for (const char* bad : {"inf", "-inf", "nan"}) {
      Config c;
      const std::string value = f.type == FieldType::DoubleList || f.type == FieldType::DoublePair
                                    ? fmt::format("[{},{}]", bad, bad)
                                    : std::string(bad);
      if (f.type == FieldType::DoubleList && f.key == "aux_loss_coeff") {
        apply_overrides(c, {fmt::format("--moe.aux_loss_coeff={}", bad)});
      } else {
        apply_overrides(c, {fmt::format("{}={}", f.flag(), value)});
      }
      const std::string msg = validate_error(c);
      EXPECT_NE(msg.find(fmt::format("config error V2: [{}] {} = ", f.section, f.key)), std::string::npos)
          << f.flag() << "=" << value << ":\n"
          << msg;
      ++checked;
    }
  }
  EXPECT_GE(checked, 3 * 30);  // every float key of every section, [rl] included
}
