#include "cli/model_source.h"

#include <filesystem>

#include "cli/commands.h"
#include "config/toml_reader.h"
#include "train/checkpoint.h"

namespace foldmoe::cli {

ModelSource model_source(const std::string& arg, const std::string& what) {
  ModelSource s;
  if (hf::is_hf_directory(arg)) {
    s.dir = arg;
    s.hf = hf::read_hf_config(arg);
  } else {
    s.dir = checkpoint_argument(arg, what);
  }
  return s;
}

Config ModelSource::config() const {
  if (hf) return hf::apply_hf_config(Config{}, *hf);
  const nlohmann::json manifest = train::read_checkpoint_manifest(dir);
  return config_from_toml(manifest.at("config").get<std::string>(), dir + "/manifest.json");
}

void use_hf_tokenizer(Config& cfg, const ModelSource& source) {
  if (source.hf && std::filesystem::exists(std::filesystem::path(source.dir) / "tokenizer.json"))
    cfg.data.tokenizer = source.dir;
}

}  // namespace foldmoe::cli
