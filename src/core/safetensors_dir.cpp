#include "core/safetensors_dir.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"

namespace foldmoe {

namespace fs = std::filesystem;

namespace {
[[noreturn]] void bad_index(const std::string& index, const std::string& problem) {
  user_error("hf error H1: '{}' {}; re-save the model (save_pretrained) or restore the directory", index, problem);
}
}  // namespace

SafetensorsDir::SafetensorsDir(const std::string& dir) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  const fs::path single = fs::path(dir) / "model.safetensors";
  std::map<std::string, std::string> weight_map;  // tensor -> file name, from the index
  std::vector<std::string> file_names;
  if (fs::exists(index)) {
    std::ifstream in(index);
    std::stringstream text;
    text << in.rdbuf();
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text.str());
    } catch (const nlohmann::json::exception& e) {
      bad_index(index.string(), fmt::format("is not valid JSON ({})", e.what()));
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      bad_index(index.string(), "has no \"weight_map\" object");
    for (const auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) bad_index(index.string(), fmt::format("maps tensor '{}' to a non-string", name));
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f == "." || f == "..")
        bad_index(index.string(),
                  fmt::format("maps tensor '{}' to '{}', which is not a file of the directory", name, f));
      weight_map[name] = f;
      if (std::find(file_names.begin(), file_names.end(), f) == file_names.end()) file_names.push_back(f);
    }
    for (const std::string& f : file_names)
      if (!fs::is_regular_file(fs::path(dir) / f)) {
        std::string example;
        for (const auto& [name, file] : weight_map)
          if (file == f) {
            example = name;
            break;
          }
        bad_index(index.string(), fmt::format("names the file '{}' (for tensor '{}' and maybe others), which does not "
                                              "exist in {}",
                                              f, example, dir));
      }
  } else if (fs::is_regular_file(single)) {
    file_names.push_back("model.safetensors");
  } else {
    user_error(
        "hf error H1: '{}' has neither model.safetensors nor model.safetensors.index.json; foldmoe reads Hugging Face "
        "weights saved as safetensors (save_pretrained(..., safe_serialization=True))",
        dir);
  }
  for (const std::string& f : file_names) {
    files_.push_back(std::make_unique<MappedSafetensors>((fs::path(dir) / f).string()));
    const MappedSafetensors& m = *files_.back();
    for (const SafetensorsEntry& e : m.header().entries) {
      if (!weight_map.empty()) {
        const auto it = weight_map.find(e.name);
        if (it == weight_map.end() || it->second != f)
          bad_index(index.string(), fmt::format("does not list tensor '{}' of '{}' under that file", e.name, m.path()));
      }
      if (tensors_.count(e.name))
        user_error("hf error H1: tensor '{}' is in both '{}' and '{}' of {}; keep one copy", e.name,
                   tensors_[e.name].file->path(), m.path(), dir);
      tensors_[e.name] = {&m, &e};
    }
  }
  for (const auto& [name, file] : weight_map)
    if (!tensors_.count(name))
      bad_index(index.string(), fmt::format("maps tensor '{}' to '{}', which does not hold it", name, file));
}

SafetensorsDir::Located SafetensorsDir::find(const std::string& name) const {
  const auto it = tensors_.find(name);
  return it == tensors_.end() ? Located{} : it->second;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  for (const auto& [name, loc] : tensors_) out.push_back(name);
  return out;
}

}  // namespace foldmoe
