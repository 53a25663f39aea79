#include "hf/hf_weights.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/check.h"
#include "core/safetensors_dir.h"
#include "core/safetensors_sharded_writer.h"
#include "hf/state_dict_adapter.h"
#include "parallel/logical_params.h"

namespace foldmoe::hf {

namespace fs = std::filesystem;

namespace {

// Every parameter of the world (name -> logical shape), the same on every rank.
std::map<std::string, Shape> world_parameters(Model& model, const ProcessGroups& groups) {
  nlohmann::json mine = nlohmann::json::array();
  for (ParamArena* a : {&model.dense(), &model.expert()})
    for (int i = 0; i < a->size(); ++i) mine.push_back({a->spec(i).name, a->spec(i).global_shape});
  std::map<std::string, Shape> all;
  for (const std::string& r : all_gather_strings(*groups.world, mine.dump())) {
    const nlohmann::json parsed = nlohmann::json::parse(r);
    for (const auto& p : parsed) all[p[0].get<std::string>()] = p[1].get<Shape>();
  }
  return all;
}

// One HF tensor of a foldmoe parameter: its name and shape (an equal share of the parameter's rows).
struct Part {
  std::string hf_name;
  Shape shape;
};
std::vector<Part> parts_of(const StateDictAdapter& adapter, const std::string& name, const Shape& shape) {
  std::vector<Part> out;
  const std::vector<std::string> names = adapter.to_hf(name);
  for (const std::string& n : names) {
    Shape s = shape;
    s[0] /= int64_t(names.size());
    out.push_back({n, s});
  }
  return out;
}

// Calls emit(first_local, first_logical, count) for each run of local elements whose logical
// indices are consecutive and lie in one part (parts are `part_numel` long); local elements of
// padding (global index < 0) are passed as runs with first_logical = -1.
template <typename Emit>
void for_each_run(const ParamSpec& s, int64_t part_numel, Emit emit) {
  const int64_t n = shape_numel(s.shape);
  const auto g = [&](int64_t k) { return s.global_index ? s.global_index(k) : k; };
  int64_t k0 = 0;
  while (k0 < n) {
    const int64_t g0 = g(k0);
    int64_t k = k0 + 1;
    if (g0 < 0) {
      while (k < n && g(k) < 0) ++k;
    } else if (!s.global_index) {
      k = std::min(n, (g0 / part_numel + 1) * part_numel);  // identity: to the end of the part
    } else {
      while (k < n && g(k) == g0 + (k - k0) && g(k) / part_numel == g0 / part_numel) ++k;
    }
    emit(k0, g0, k - k0);
    k0 = k;
  }
}

}  // namespace

void load_hf_weights(const HfModelConfig& hf, Model& model, const ProcessGroups& groups) {
  const StateDictAdapter& adapter = adapter_for(hf.model_type);
  const SafetensorsDir files(hf.dir);
  const std::map<std::string, Shape> params = world_parameters(model, groups);
  // The whole tensor set is checked on every rank (names and shapes only) before any value is read.
  std::set<std::string> used;
  for (const auto& [name, shape] : params) {
    const std::vector<Part> parts = parts_of(adapter, name, shape);
    if (parts.empty())
      user_error(
          "hf error H3: foldmoe parameter '{}' has no Hugging Face name in a {} model; this is a foldmoe "
          "configuration the architecture cannot express",
          name, hf.model_type);
    for (const Part& p : parts) {
      const SafetensorsDir::Located at = files.find(p.hf_name);
      if (!at.file)
        user_error(
            "hf error H3: {} lacks tensor '{}' (foldmoe '{}', shape {}), which its config.json implies; the "
            "weights are incomplete or belong to another configuration",
            hf.dir, p.hf_name, name, shape_str(p.shape));
      if (at.entry->shape != p.shape)
        user_error(
            "hf error H3: tensor '{}' in '{}' has shape {} but config.json gives it shape {}; the weights and "
            "config.json disagree",
            p.hf_name, at.file->path(), shape_str(at.entry->shape), shape_str(p.shape));
      if (!readable_as_f32(at.entry->dtype))
        user_error("hf error H4: tensor '{}' in '{}' is stored as {}; foldmoe reads F32, BF16 and F16 weights",
                   p.hf_name, at.file->path(), at.entry->dtype);
      used.insert(p.hf_name);
    }
  }
  const bool tied = !params.count("lm_head.weight") && params.count("embedding.weight");
  for (const std::string& n : files.names())
    if (!used.count(n) && !(tied && n == "lm_head.weight"))
      user_error(
          "hf error H3: tensor '{}' in '{}' is not part of a {} model with this config.json; foldmoe would "
          "ignore it, so it refuses the directory",
          n, files.find(n).file->path(), hf.model_type);

  for (ParamArena* a : {&model.dense(), &model.expert()})
    for (int i = 0; i < a->size(); ++i) {
      const ParamSpec& s = a->spec(i);
      const std::vector<Part> parts = parts_of(adapter, s.name, s.global_shape);
      const int64_t part_numel = shape_numel(parts[0].shape);
      float* dst = a->params() + a->offset(i);
      for_each_run(s, part_numel, [&](int64_t k, int64_t g, int64_t count) {
        if (g < 0) {
          std::fill(dst + k, dst + k + count, 0.0f);
          return;
        }
        const SafetensorsDir::Located at = files.find(parts[size_t(g / part_numel)].hf_name);
        at.file->read_f32(*at.entry, g % part_numel, count, dst + k);
      });
    }
  groups.world->barrier();
}

std::string tokenizer_dir_of(const Config& cfg) {
  const fs::path t = cfg.data.tokenizer;
  std::error_code ec;
  if (fs::is_directory(t, ec)) return t.string();
  if (t.filename() == "tokenizer.json" || t.extension() == ".model") return t.parent_path().string();
  return "";
}

void check_hf_output(const std::string& out_dir) {
  std::error_code ec;
  if (fs::exists(out_dir, ec))
    user_error("hf error H6: the output '{}' exists; foldmoe never overwrites it: name a new directory or remove it",
               out_dir);
  const fs::path parent = fs::absolute(out_dir).parent_path();
  if (!fs::is_directory(parent, ec) || ::access(parent.c_str(), W_OK) != 0)
    user_error("hf error H6: the parent '{}' of the output '{}' is not a writable directory; create it first",
               parent.string(), out_dir);
}

void save_hf_weights(const std::string& out_dir, const Config& cfg, Model& model, const ProcessGroups& groups,
                     const HfSaveOptions& options) {
  FOLDMOE_CHECK(options.dtype == "bf16" || options.dtype == "fp32", "HF dtype {}", options.dtype);
  const nlohmann::json config =
      hf_config_json(cfg, options.model_type, options.dtype == "bf16" ? "bfloat16" : "float32");
  const StateDictAdapter& adapter = adapter_for(config.at("model_type").get<std::string>());
  const std::map<std::string, Shape> params = world_parameters(model, groups);
  std::vector<PlannedTensor> plan;
  for (const auto& [name, shape] : params) {
    const std::vector<Part> parts = parts_of(adapter, name, shape);
    if (parts.empty())
      user_error("hf error H2: foldmoe parameter '{}' has no Hugging Face name in a {} model", name,
                 config.at("model_type").get<std::string>());
    for (const Part& p : parts) plan.push_back({p.hf_name, p.shape});
  }
  const std::string partial = out_dir + ".partial";
  const ShardedSafetensorsWriter writer(partial, plan, options.dtype == "bf16" ? "BF16" : "F32",
                                        options.max_shard_bytes);
  const bool root = groups.world->rank() == 0;
  if (root) {
    std::error_code ec;
    fs::remove_all(partial, ec);  // the leftovers of an interrupted save (never the output itself)
    fs::create_directories(partial);
    writer.create_files();
  }
  groups.world->barrier();
  // Each element is written by exactly one rank: the owners of LogicalParams::gather.
  for (ParamArena* a : {&model.dense(), &model.expert()}) {
    const bool replica_owner = a->kind() == ArenaKind::Dense ? groups.dp_cp->rank() == 0 : groups.edp->rank() == 0;
    if (!replica_owner) continue;
    for (int i = 0; i < a->size(); ++i) {
      const ParamSpec& s = a->spec(i);
      if (s.sequence_parallel && groups.tp->rank() != 0) continue;
      const std::vector<Part> parts = parts_of(adapter, s.name, s.global_shape);
      const int64_t part_numel = shape_numel(parts[0].shape);
      const float* src = a->params() + a->offset(i);
      for_each_run(s, part_numel, [&](int64_t k, int64_t g, int64_t count) {
        if (g >= 0) writer.write(parts[size_t(g / part_numel)].hf_name, g % part_numel, src + k, count);
      });
    }
  }
  groups.world->barrier();
  if (root) {
    writer.write_index();
    std::ofstream(partial + "/config.json") << config.dump(2) << "\n";
    if (!options.tokenizer_dir.empty())
      for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
                            "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json"}) {
        const fs::path from = fs::path(options.tokenizer_dir) / f;
        if (fs::is_regular_file(from)) fs::copy_file(from, fs::path(partial) / f);
      }
    fs::rename(partial, out_dir);
  }
  groups.world->barrier();
}

}  // namespace foldmoe::hf
