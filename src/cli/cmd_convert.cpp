// `foldmoe convert --from hf --input HF_DIR --output CKPT` and `foldmoe convert --to hf --input CKPT
// --output HF_DIR [--dtype bf16|fp32] [--max-shard-size 5GB] [--model-type T]`: Hugging Face model
// directories in and out (docs/hf-models.md). Under mpirun with a layout (--parallel.tp=2 ...) each
// rank reads and writes only its own shards of the Hugging Face files. With both --from hf and --to
// hf, an HF directory is re-written (dtype, shard size) streaming both ways.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <vector>

#include "cli/commands.h"
#include "cli/launch.h"
#include "config/flag_reader.h"
#include "config/toml_reader.h"
#include "config/toml_writer.h"
#include "config/validate.h"
#include "core/memory_usage.h"
#include "core/safetensors_sharded_writer.h"
#include "hf/hf_config.h"
#include "hf/hf_weights.h"
#include "train/checkpoint.h"
#include "train/logical_checkpoint.h"

namespace foldmoe::cli {

namespace {
namespace fs = std::filesystem;

struct ConvertArgs {
  std::string from, to, input, output, dtype = "bf16", max_shard = "5GB", model_type;
};

// A conversion never trains: the gradient arenas are dropped at once (half the model's memory).
void free_gradients(Model& model) {
  model.dense().free_grads();
  model.expert().free_grads();
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Collective: rank 0 prints the throughput and every rank's peak resident memory so far.
void report(const char* what, const std::string& in, const std::string& out, double secs, uint64_t bytes,
            const ProcessGroups& g) {
  const float mine = float(double(peak_rss_bytes()) / 1e6);
  std::vector<float> rss(size_t(g.world->size()));
  g.world->all_gather(&mine, rss.data(), 1);
  if (g.world->rank() != 0) return;
  std::string per_rank;
  for (float r : rss) per_rank += fmt::format("{}{:.0f}", per_rank.empty() ? "" : " ", r);
  std::printf("convert %s: %s -> %s: %.1f MB in %.2f s (%.1f MB/s), %d rank(s), peak RSS per rank (MB): %s\n", what,
              in.c_str(), out.c_str(), double(bytes) / 1e6, secs, secs > 0 ? double(bytes) / 1e6 / secs : 0.0,
              g.world->size(), per_rank.c_str());
  std::fflush(stdout);
}

// Bytes of the safetensors files of a directory (the throughput's numerator).
uint64_t safetensors_bytes(const std::string& dir) {
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".safetensors") bytes += e.file_size();
  return bytes;
}

// An HF directory's model built under this launch's layout (config keys from the command line
// override config.json's model) with the weights read in, each rank only its own shards.
struct LoadedHfModel {
  Config cfg;
  ProcessGroups groups;
  std::unique_ptr<Model> model;
  double load_s = 0;  // reading the weights, after the model is built
};

LoadedHfModel load_hf_model(CLI::App* sub, const ConvertArgs& a, const hf::HfModelConfig& hf_cfg, bool take_tokenizer,
                            const std::string& report_to) {
  Config user;
  apply_overrides(user, sub->remaining());
  LoadedHfModel m{hf::apply_hf_config(user, hf_cfg), {}, nullptr};
  if (take_tokenizer && m.cfg.data.tokenizer == Config{}.data.tokenizer &&
      fs::exists(fs::path(a.input) / "tokenizer.json"))
    m.cfg.data.tokenizer = a.input;
  validate(m.cfg);
  m.groups = make_groups(m.cfg);
  auto t0 = std::chrono::steady_clock::now();
  m.model = std::make_unique<Model>(m.cfg, m.groups);
  free_gradients(*m.model);
  if (m.groups.world->rank() == 0)
    std::printf("convert: model built (random init, later overwritten) in %.2f s\n", seconds_since(t0));
  m.groups.world->barrier();
  t0 = std::chrono::steady_clock::now();  // the throughput is the reading's own
  hf::load_hf_weights(hf_cfg, *m.model, m.groups);
  m.load_s = seconds_since(t0);
  report("--from hf (load)", a.input, report_to, m.load_s, safetensors_bytes(a.input), m.groups);
  return m;
}

int from_hf(CLI::App* sub, const ConvertArgs& a) {
  const hf::HfModelConfig hf_cfg = hf::read_hf_config(a.input);
  if (fs::exists(a.output))
    user_error("hf error H6: the output '{}' exists; foldmoe never overwrites it: name a new directory or remove it",
               a.output);
  const LoadedHfModel m = load_hf_model(sub, a, hf_cfg, /*take_tokenizer=*/true, a.output);
  const auto t0 = std::chrono::steady_clock::now();
  save_logical_checkpoint(a.output, *m.model, m.groups, nullptr, 0, config_to_toml(m.cfg),
                          {{"hf", {{"source", a.input}, {"model_type", hf_cfg.model_type}}}});
  report("--from hf (load + checkpoint save)", a.input, a.output, m.load_s + seconds_since(t0),
         safetensors_bytes(a.input), m.groups);
  return 0;
}

// --from hf --to hf: an HF directory re-written (another dtype, shard size or layout of the writing
// ranks), streamed both ways: no rank ever holds more than its own shards.
int hf_to_hf(CLI::App* sub, const ConvertArgs& a) {
  const hf::HfModelConfig hf_cfg = hf::read_hf_config(a.input);
  hf::check_hf_output(a.output);
  const LoadedHfModel m = load_hf_model(sub, a, hf_cfg, /*take_tokenizer=*/false, "memory");
  hf::HfSaveOptions o;
  o.model_type = hf_cfg.model_type;
  o.dtype = a.dtype;
  o.max_shard_bytes = parse_byte_size(a.max_shard, "--max-shard-size");
  o.tokenizer_dir = a.input;
  const auto t1 = std::chrono::steady_clock::now();
  hf::save_hf_weights(a.output, m.cfg, *m.model, m.groups, o);
  report("--to hf (write)", "memory", a.output, seconds_since(t1), safetensors_bytes(a.output), m.groups);
  return 0;
}

int to_hf(CLI::App* sub, const ConvertArgs& a) {
  const std::string dir = checkpoint_argument(a.input, "--input");
  hf::check_hf_output(a.output);
  const nlohmann::json manifest = train::read_checkpoint_manifest(dir);
  Config cfg = config_from_toml(manifest.at("config").get<std::string>(), dir + "/manifest.json");
  cfg.parallel = ParallelConfig{};         // the layout of the run that saved it is not this one's
  apply_overrides(cfg, sub->remaining());  // a layout to write with (--parallel.tp=2 ...)
  validate(cfg);
  const ProcessGroups groups = make_groups(cfg);
  Model model(cfg, groups);
  free_gradients(model);
  load_logical_checkpoint(dir, model, groups, nullptr);
  hf::HfSaveOptions o;
  o.model_type = a.model_type;
  o.dtype = a.dtype;
  o.max_shard_bytes = parse_byte_size(a.max_shard, "--max-shard-size");
  o.tokenizer_dir = hf::tokenizer_dir_of(cfg);
  const auto t0 = std::chrono::steady_clock::now();
  hf::save_hf_weights(a.output, cfg, model, groups, o);
  report("--to hf (write)", dir, a.output, seconds_since(t0), safetensors_bytes(a.output), groups);
  return 0;
}
}  // namespace

void register_convert(CLI::App& app) {
  CLI::App* sub = app.add_subcommand(
      "convert", "Convert between Hugging Face model directories and foldmoe checkpoints (docs/hf-models.md)");
  auto a = std::make_shared<ConvertArgs>();
  sub->add_option("--from", a->from, "Source format: hf (a Hugging Face directory to a foldmoe checkpoint)")
      ->check(CLI::IsMember({"hf"}));
  sub->add_option("--to", a->to, "Target format: hf (a foldmoe checkpoint to a Hugging Face directory)")
      ->check(CLI::IsMember({"hf"}));
  sub->add_option("--input", a->input, "The directory to convert")->required();
  sub->add_option("--output", a->output, "The directory to create (never overwritten)")->required();
  sub->add_option("--dtype", a->dtype, "With --to hf: bf16 (default, round to nearest even) or fp32")
      ->check(CLI::IsMember({"bf16", "fp32"}));
  sub->add_option("--max-shard-size", a->max_shard, "With --to hf: largest safetensors shard (default 5GB)");
  sub->add_option("--model-type", a->model_type,
                  "With --to hf: llama, qwen2, qwen3, mixtral, qwen2_moe, qwen3_moe or olmoe (default: the one "
                  "whose features the model uses)");
  sub->allow_extras();
  sub->footer("Config keys (a layout such as --parallel.tp=2 under mpirun) are set as --section.key=value.");
  set_action(sub, [sub, a] {
    if (a->from.empty() && a->to.empty())
      user_error(
          "`foldmoe convert` needs --from hf (HF directory -> checkpoint), --to hf (checkpoint -> HF "
          "directory) or both (HF directory -> HF directory, e.g. another dtype or shard size)");
    if (!a->from.empty() && !a->to.empty()) return hf_to_hf(sub, *a);
    return a->from == "hf" ? from_hf(sub, *a) : to_hf(sub, *a);
  });
}

}  // namespace foldmoe::cli
