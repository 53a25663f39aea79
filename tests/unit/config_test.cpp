#include <gtest/gtest.h>

#include <set>
#include <string>

#include "core/check.h"
#include "model/config.h"
#include "model/config_fields.h"

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
  for (const std::string& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << "missing `" << n << "` in:\n" << msg;
  EXPECT_NE(msg.find("fix:"), std::string::npos) << msg;
}

}  // namespace

TEST(ConfigFields, TableIsConsistent) {
  std::set<std::string> names;
  Config c;
  const Config defaults;
  for (const ConfigField& f : config_fields()) {
    EXPECT_TRUE(names.insert(std::string(f.flag())).second) << "duplicate " << f.flag();
    EXPECT_FALSE(f.help.empty()) << f.flag();
    EXPECT_EQ(static_cast<int>(f.type), static_cast<int>(f.ref(c).index())) << f.flag();
    EXPECT_EQ(find_config_field(f.section, f.key), &f);
  }
  // Every accessor hits a distinct member: changing one field through it changes exactly one key.
  for (const ConfigField& f : config_fields()) {
    Config m;
    std::visit(
        [](auto* p) {
          using T = std::remove_cvref_t<decltype(*p)>;
          if constexpr (std::is_same_v<T, bool>) *p = !*p;
          else if constexpr (std::is_same_v<T, std::string>) *p += "x";
          else if constexpr (std::is_arithmetic_v<T>) *p = *p + 7;
          else if constexpr (std::is_same_v<T, std::optional<double>> || std::is_same_v<T, std::optional<int>>) *p = 3;
          else p->push_back({});
        },
        f.ref(m));
    int changed = 0;
    for (const ConfigField& g : config_fields()) changed += field_value_toml(g, m) != field_value_toml(g, defaults);
    EXPECT_EQ(changed, 1) << f.flag();
  }
  EXPECT_EQ(find_config_field("moe", "nope"), nullptr);
  const std::string help = config_help();
  EXPECT_NE(help.find("--moe.topk=<integer>"), std::string::npos) << help;
  EXPECT_NE(help.find("--moe.capacity_factor=<float or none>"), std::string::npos);
  EXPECT_NE(help.find("[checkpoint]"), std::string::npos);
}

TEST(Config, DefaultsAreValid) {
  EXPECT_EQ(validate_error(Config{}), "");
  EXPECT_EQ(validate_error(moe_config()), "");
}

TEST(Config, RoundTripDefaultsAndNonDefaults) {
  const Config d;
  EXPECT_EQ(config_from_toml(config_to_toml(d), "dump"), d);

  Config c = moe_config();
  c.model.rope_theta = 500000.0;
  c.model.norm_eps = 1e-6;
  c.model.init_std = 0.1 + 0.2;  // not exactly representable in short decimal
  c.moe.layer_freq = {1, 0, 1, 1};
  c.model.layers = 4;
  c.moe.topk_scaling_factor = 2.5;
  c.moe.num_groups = 4;
  c.moe.group_topk = 2;
  c.moe.capacity_factor = 1.25;
  c.moe.load_balancing_type = {"aux_loss", "seq_aux_loss"};
  c.moe.aux_loss_coeff = {1e-2, 0.0};
  c.moe.capacity_partition = {2, 2};
  c.moe.score_function = "sigmoid";
  c.parallel.order = "tp-cp-ep-pp-dp";
  c.parallel.etp = 2;
  c.train.seed = int64_t(1) << 40;
  c.train.run_dir = "runs/with \"quotes\" and \\ backslash\tand tab";
  c.optim.lr = 3e-3;
  c.data.tasks = {"sort"};
  c.checkpoint.load = "ckpt/step_10";
  c.log.progress = "off";
  const std::string text = config_to_toml(c);
  EXPECT_EQ(config_from_toml(text, "dump"), c) << text;
  // Optional keys that are unset are commented out.
  Config none = c;
  none.moe.capacity_factor.reset();
  const std::string t2 = config_to_toml(none);
  EXPECT_NE(t2.find("# capacity_factor = (unset)"), std::string::npos) << t2;
  EXPECT_EQ(config_from_toml(t2, "dump"), none);
  // Scalar layer_freq is written as an integer.
  EXPECT_NE(config_to_toml(Config{}).find("layer_freq = 1  #"), std::string::npos);
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
  apply_overrides(c, {"--moe.num_experts=8", "--moe.topk=1", "--model.rope_theta=5e5",
                      "--train.per_token_loss=true", "--parallel.order=tp-cp-ep-pp-dp",
                      "--moe.capacity_factor=1.5", "--moe.capacity_partition=[2,1]",
                      "--moe.aux_loss_coeff=0.01, 0.001", "--moe.load_balancing_type=[aux_loss, \"seq_aux_loss\"]",
                      "--data.tasks=add,sort", "--moe.layer_freq=2", "--moe.num_groups=4",
                      "--train.run_dir=\"runs/x\"", "--train.seed=-5"});
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

  auto override_error = [&](const std::string& flag) {
    return error_of([&] { apply_overrides(c, {flag}); });
  };
  EXPECT_EQ(override_error("--moe.topkk=3"), "override --moe.topkk=3: unknown key [moe] topkk (did you mean `--moe.topk`?)");
  EXPECT_NE(override_error("--model.topk=3").find("did you mean `--moe.topk`?"), std::string::npos);
  EXPECT_NE(override_error("--mo.topk=3").find("unknown section [mo]"), std::string::npos);
  EXPECT_EQ(override_error("--moe.topk=two"), "override --moe.topk=two: [moe] topk expects an integer, got `two`");
  EXPECT_NE(override_error("--moe.topk=3x").find("expects an integer"), std::string::npos);
  EXPECT_NE(override_error("--moe.capacity_factor=lots").find("expects a float or none"), std::string::npos);
  EXPECT_NE(override_error("--moe.capacity_partition=[1,x]").find("expects a list of integers, got `x`"), std::string::npos);
  EXPECT_NE(override_error("--train.per_token_loss=maybe").find("expects a bool"), std::string::npos);
  EXPECT_NE(override_error("--moe.topk").find("expected --section.key=value"), std::string::npos);
  EXPECT_NE(override_error("--topk=2").find("expected --section.key=value"), std::string::npos);
}

TEST(Config, ModelRules) {
  auto with = [](auto edit) { Config c; edit(c); return c; };
  expect_invalid(with([](Config& c) { c.model.layers = 0; }), {"[model] layers = 0", "> 0"});
  expect_invalid(with([](Config& c) { c.model.hidden = -1; }), {"[model] hidden = -1"});
  expect_invalid(with([](Config& c) { c.model.heads = 0; }), {"[model] heads = 0"});
  expect_invalid(with([](Config& c) { c.model.kv_heads = 0; }), {"[model] kv_heads = 0"});
  expect_invalid(with([](Config& c) { c.model.kv_heads = 3; }), {"heads = 4", "kv_heads = 3"});
  expect_invalid(with([](Config& c) { c.model.hidden = 66; }), {"hidden = 66", "heads = 4", "head_dim"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.model.hidden = 66; c.model.head_dim = 16; })), "");
  expect_invalid(with([](Config& c) { c.model.head_dim = 15; }), {"head_dim = 15", "even"});
  expect_invalid(with([](Config& c) { c.model.hidden = 24; c.model.heads = 8; c.model.kv_heads = 8; }), {"head dimension 3", "RoPE"});
  expect_invalid(with([](Config& c) { c.model.ffn = 0; }), {"[model] ffn = 0"});
  expect_invalid(with([](Config& c) { c.model.vocab = -3; }), {"[model] vocab = -3"});
  expect_invalid(with([](Config& c) { c.model.norm_eps = 0; }), {"norm_eps"});
}

TEST(Config, MoERules) {
  auto with = [](auto edit) { Config c = moe_config(); edit(c); return c; };
  expect_invalid(with([](Config& c) { c.moe.num_experts = -1; }), {"num_experts = -1"});
  expect_invalid(with([](Config& c) { c.moe.topk = 9; }), {"M1", "topk = 9", "num_experts = 8"});
  expect_invalid(with([](Config& c) { c.moe.topk = 0; }), {"M1", "topk = 0"});
  // Dense models ignore topk etc.
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.num_experts = 0; c.moe.topk = 99; })), "");
  expect_invalid(with([](Config& c) { c.parallel.ep = 3; }), {"M2", "ep = 3", "num_experts = 8"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 4; }), {"M3", "num_groups = 4", "group_topk = none"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 3; c.moe.group_topk = 1; }), {"M3", "num_groups = 3"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 4; c.moe.group_topk = 5; }), {"M3", "group_topk = 5"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 4; c.moe.group_topk = 1; c.moe.topk = 3; }), {"M3", "topk = 3"});
  expect_invalid(with([](Config& c) { c.moe.num_groups = 4; c.moe.group_topk = 3; }), {"M3", "topk = 2", "group_topk = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.num_groups = 4; c.moe.group_topk = 2; })), "");
  expect_invalid(with([](Config& c) { c.moe.enable_expert_bias = true; }), {"M4", "enable_expert_bias", "sigmoid"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.enable_expert_bias = true; c.moe.score_function = "sigmoid"; })), "");
  expect_invalid(with([](Config& c) { c.moe.load_balancing_type = {"sinkhorn"}; c.moe.aux_loss_coeff = {0.1}; }), {"M5", "sinkhorn"});
  expect_invalid(with([](Config& c) { c.moe.load_balancing_type = {"sinkhorn"}; c.moe.capacity_factor = 1.0; }), {"M5", "capacity_factor"});
  expect_invalid(with([](Config& c) { c.moe.pad_to_capacity = true; }), {"M6", "pad_to_capacity"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.pad_to_capacity = true; c.moe.capacity_factor = 1.0; })), "");
  expect_invalid(with([](Config& c) { c.moe.drop_policy = "random"; }), {"M7", "drop_policy", "random"});
  expect_invalid(with([](Config& c) { c.moe.aux_loss_coeff = {0.1, 0.2}; }), {"M8", "load_balancing_type", "aux_loss_coeff"});
  expect_invalid(with([](Config& c) { c.moe.load_balancing_type = {"aux_loss", "aux_loss"}; c.moe.aux_loss_coeff = {0, 0}; }), {"M8", "twice"});
  expect_invalid(with([](Config& c) { c.moe.aux_loss_coeff = {-0.1}; }), {"M8", "aux_loss_coeff", "-0.1"});
  expect_invalid(with([](Config& c) { c.moe.load_balancing_type = {"magic"}; }), {"M8", "magic"});
  expect_invalid(with([](Config& c) { c.parallel.etp = 3; }), {"M9", "etp = 3", "128"});
  expect_invalid(with([](Config& c) { c.moe.ffn_hidden_size = 31; c.parallel.tp = 2; }), {"M9", "F_moe = 31", "etp = 2"});
  expect_invalid(with([](Config& c) { c.parallel.tp = 2; c.parallel.sequence_parallel = false; }), {"M10", "tp = 2", "sequence_parallel"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.parallel.tp = 2; })), "");
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {2}; }), {"M11", "capacity_partition"});
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {2, 1}; c.parallel.tp = 2; }), {"M11", "tp = 2"});
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {1, 3}; }), {"M11", "seq_len = 64", "2*cp = 6"});
  expect_invalid(with([](Config& c) { c.moe.capacity_partition = {3, 1}; }), {"M11", "tp = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.moe.capacity_partition = {2, 2}; c.moe.capacity_factor = 1.0; })), "");
  expect_invalid(with([](Config& c) { c.moe.score_function = "relu"; }), {"score_function", "relu"});
  expect_invalid(with([](Config& c) { c.moe.dispatcher = "p2p"; }), {"dispatcher", "p2p"});
  expect_invalid(with([](Config& c) { c.moe.shared_expert_gate = true; }), {"shared_expert_gate"});
  expect_invalid(with([](Config& c) { c.moe.z_loss_coeff = -1.0; }), {"z_loss_coeff"});
  expect_invalid(with([](Config& c) { c.moe.input_jitter_eps = 1.5; }), {"input_jitter_eps"});
}

TEST(Config, ParallelRulesWithoutWorldSize) {
  auto with = [](auto edit) { Config c = moe_config(); edit(c); return c; };
  expect_invalid(with([](Config& c) { c.parallel.tp = 0; }), {"L1", "tp = 0"});
  expect_invalid(with([](Config& c) { c.parallel.pp = -1; }), {"L1", "pp = -1"});
  expect_invalid(with([](Config& c) { c.parallel.etp = -1; }), {"L1", "etp = -1"});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-ep-dp"; }), {"L2", "tp-cp-ep-dp", "missing token \"pp\""});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-ep-dp-pp-tp"; }), {"L2", "duplicate token \"tp\""});
  expect_invalid(with([](Config& c) { c.parallel.order = "tp-cp-xp-dp-pp"; }), {"L2", "unknown token \"xp\""});
  expect_invalid(with([](Config& c) { c.parallel.cp = 3; }), {"L8", "seq_len = 64", "cp"});
  expect_invalid(with([](Config& c) { c.parallel.tp = 4; c.model.heads = 4; c.model.kv_heads = 4; c.train.seq_len = 6; }), {"L9", "tp = 4"});
  expect_invalid(with([](Config& c) { c.moe.num_experts = 0; c.parallel.tp = 2; c.model.ffn = 127; }), {"L10", "ffn = 127"});
  expect_invalid(with([](Config& c) { c.parallel.tp = 4; }), {"L11", "kv_heads = 2", "tp = 4"});
  expect_invalid(with([](Config& c) { c.model.layers = 3; c.parallel.pp = 2; }), {"L12", "layers = 3", "pp = 2"});
  expect_invalid(with([](Config& c) { c.parallel.vpp = 2; }), {"L12", "vpp = 2"});
  expect_invalid(with([](Config& c) { c.model.layers = 4; c.parallel.pp = 2; c.parallel.vpp = 2; c.train.micro_batches = 3; }), {"L14", "micro_batches = 3"});
  EXPECT_EQ(validate_error(with([](Config& c) { c.model.layers = 4; c.parallel.pp = 2; c.parallel.vpp = 2; c.train.micro_batches = 4; })), "");
}

TEST(Config, TrainOptimDataLogRules) {
  auto with = [](auto edit) { Config c; edit(c); return c; };
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
  const std::string msg = validate_error(with([](Config& c) { c.train.steps = -1; c.optim.lr = 0; }));
  EXPECT_NE(msg.find("2 configuration errors"), std::string::npos) << msg;
  EXPECT_NE(msg.find("steps"), std::string::npos);
  EXPECT_NE(msg.find("lr"), std::string::npos);
}
