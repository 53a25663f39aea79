#include "train/checkpoint.h"

#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/check.h"
#include "core/crc32.h"
#include "core/safetensors.h"
#include "train/nonfinite_guard.h"

namespace foldmoe::train {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kModelFile = "model.safetensors";
constexpr const char* kOptimizerFile = "optimizer.safetensors";
constexpr const char* kManifestFile = "manifest.json";
constexpr const char* kCompleteFile = "COMPLETE";

// ---- durable file system steps ---------------------------------------------------------------

// Flushes a file's or directory's data to disk, so that a rename after it cannot expose an empty
// or partial file after a power loss.
void fsync_path(const fs::path& p, bool directory) {
  const int fd = ::open(p.c_str(), O_RDONLY | (directory ? O_DIRECTORY : 0));
  if (fd < 0) user_error("cannot open '{}' to flush it to disk: {}", p.string(), std::strerror(errno));
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) user_error("flushing '{}' to disk failed: {} (disk full or failing?)", p.string(), std::strerror(err));
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out << text;
  out.flush();
  if (!out) user_error("cannot write '{}': {}", p.string(), std::strerror(errno));
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) user_error("cannot read '{}'", p.string());
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Puts `tmp` at `dir`. With a previous checkpoint there, the two are exchanged atomically
// (renameat2 RENAME_EXCHANGE) so that `dir` always names a complete checkpoint; the old one then
// sits at `tmp` and is deleted. File systems without the exchange get two renames.
void move_into_place(const fs::path& tmp, const fs::path& dir) {
  if (!fs::exists(dir)) {
    fs::rename(tmp, dir);
    return;
  }
  if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, dir.c_str(), RENAME_EXCHANGE) != 0) {
    fs::path old = dir;
    old += ".old-" + std::to_string(::getpid());
    fs::remove_all(old);
    fs::rename(dir, old);
    fs::rename(tmp, dir);
    fs::remove_all(old);
    return;
  }
  fs::remove_all(tmp);
}

// ---- what is saved ----------------------------------------------------------------------------

struct ArenaView {
  ParamArena* arena;
  std::vector<float>* m;
  std::vector<float>* v;
  const char* kind;
};

std::vector<ArenaView> arenas_of(const TrainState& s) {
  std::vector<ArenaView> out;
  if (s.dense) out.push_back({s.dense, s.adam_m_dense, s.adam_v_dense, "dense"});
  if (s.expert) out.push_back({s.expert, s.adam_m_expert, s.adam_v_expert, "expert"});
  return out;
}

// A parameter (or moment) as a tensor at its logical shape, wrapping arena memory.
Tensor param_tensor(const ParamArena& a, const float* base, int i) {
  return Tensor::wrap(const_cast<float*>(base + a.offset(i)), a.spec(i).global_shape, DType::F32);
}

void check_saveable(const ArenaView& av) {
  FOLDMOE_CHECK(av.arena->allocated(), "{} arena saved before allocation", av.kind);
  for (const std::vector<float>* mom : {av.m, av.v})
    FOLDMOE_CHECK(!mom || int64_t(mom->size()) == av.arena->total(), "{} arena moment has {} elements, arena {}",
                  av.kind, mom ? mom->size() : 0, av.arena->total());
  FOLDMOE_CHECK((av.m == nullptr) == (av.v == nullptr), "{} arena: save both AdamW moments or neither", av.kind);
  for (int i = 0; i < av.arena->size(); ++i) {
    const ParamSpec& s = av.arena->spec(i);
    // Checkpoints hold logical tensors; a sharded arena must be gathered first.
    FOLDMOE_CHECK(s.shape == s.global_shape && !s.global_index, "parameter {} is sharded ({} of {}); gather it first",
                  s.name, shape_str(s.shape), shape_str(s.global_shape));
  }
}

json file_entry(const fs::path& p) {
  const std::string bytes = read_text(p);
  return {{"bytes", bytes.size()}, {"crc32", crc32(bytes.data(), bytes.size())}};
}

// ---- integrity ---------------------------------------------------------------------------------

// The manifest's own checksum: CRC-32 of its canonical JSON (keys sorted, no spaces, UTF-8 as is)
// without the "checksum" field, written as "crc32:xxxxxxxx". Covers the step, the data position,
// the config and the file checksums, so an edited manifest is caught at load (rule C3).
std::string manifest_checksum(json m) {
  m.erase("checksum");
  const std::string canonical = m.dump();
  return fmt::format("crc32:{:08x}", crc32(canonical.data(), canonical.size()));
}

// Rule C2: a checkpoint never holds NaN or ±Inf (it could only poison every run started from it).
void require_finite(const SafetensorsFile& f, const std::string& file, const std::string& verb) {
  for (const auto& [name, t] : f.tensors) {
    if (t.dtype() != DType::F32) continue;
    const int64_t at = first_nonfinite(t.data<float>(), t.numel());
    if (at >= 0)
      user_error("checkpoint error C2: {} tensor '{}' of {}: element {} is {} (not finite)\n  fix: {}", verb, name,
                 file, at, t.data<float>()[at],
                 verb == "refusing to save"
                     ? "the training state diverged: lower optim.lr and resume from an earlier checkpoint"
                     : "resume from an earlier checkpoint (a finite one) of this run");
  }
}

// ---- loading checks ---------------------------------------------------------------------------

[[noreturn]] void corrupted(const fs::path& dir, const std::string& problem) {
  user_error("checkpoint '{}' is corrupted: {}. Restore it from a copy or resume from another checkpoint.",
             dir.string(), problem);
}

void require_complete(const fs::path& dir) {
  if (!fs::is_directory(dir))
    user_error("checkpoint directory '{}' does not exist; check checkpoint.load (it must name a directory that "
               "contains manifest.json and COMPLETE)",
               dir.string());
  if (!fs::exists(dir / kCompleteFile))
    user_error(
        "checkpoint '{}' is incomplete (interrupted save?): it has no COMPLETE marker, so it is left as it is. "
        "Load an earlier complete checkpoint, or pass the run directory to take its latest complete one",
        dir.string());
}

// Deepest nesting of arrays and objects in JSON text (brackets inside strings do not count). A
// manifest nests a few levels; a damaged or crafted one nested thousands deep would overflow the
// stack of the recursive checksum serialisation, so it is refused before parsing.
int json_nesting_depth(const std::string& text) {
  int depth = 0, deepest = 0;
  bool in_string = false, escaped = false;
  for (const char c : text) {
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

constexpr int kMaxManifestDepth = 32;

json parse_manifest(const fs::path& dir) {
  if (!fs::exists(dir / kManifestFile)) corrupted(dir, "manifest.json is missing");
  json m;
  try {
    const std::string text = read_text(dir / kManifestFile);
    if (json_nesting_depth(text) > kMaxManifestDepth)
      corrupted(dir, fmt::format("manifest.json nests arrays or objects deeper than {} levels", kMaxManifestDepth));
    m = json::parse(text);
  } catch (const json::exception& e) {
    corrupted(dir, fmt::format("manifest.json does not parse ({})", e.what()));
  }
  if (!m.is_object() || !m.contains("format_version") || !m["format_version"].is_number_integer())
    corrupted(dir, "manifest.json has no format_version");
  const int version = m["format_version"].get<int>();
  if (version != kCheckpointFormatVersion && version != kUnsummedCheckpointFormatVersion)
    user_error(
        "checkpoint '{}' has format version {}, this foldmoe reads versions {} and {}; use the foldmoe that "
        "wrote it",
        dir.string(), version, kUnsummedCheckpointFormatVersion, kCheckpointFormatVersion);
  // Version 1 manifests predate the manifest checksum; their files still carry CRCs.
  if (version != kUnsummedCheckpointFormatVersion) {
    if (!m.contains("checksum") || !m["checksum"].is_string())
      user_error(
          "checkpoint error C3: {}/manifest.json has no checksum field: it was not written by foldmoe's save or "
          "was edited\n  fix: resume from another checkpoint of the run",
          dir.string());
    const std::string want = m["checksum"].get<std::string>(), got = manifest_checksum(m);
    if (got != want)
      user_error(
          "checkpoint error C3: {}/manifest.json fails its own checksum ({}, saved {}): it was edited or "
          "damaged after the save (its step, data position, config and file checksums can no longer be "
          "trusted)\n  fix: restore the manifest or resume from another checkpoint of the run (never edit a "
          "manifest by hand)",
          dir.string(), got, want);
  }
  for (const char* key : {"step", "files", "config", "extra"})
    if (!m.contains(key)) corrupted(dir, fmt::format("manifest.json lacks '{}'", key));
  if (!m["step"].is_number_integer() || !m["files"].is_object() || !m["config"].is_string())
    corrupted(dir, "manifest.json has a step, files or config of the wrong type");
  return m;
}

// Size first (a truncated file is the common case and deserves its own words), then the CRC.
void verify_file(const fs::path& dir, const json& files, const char* name) {
  if (!files.contains(name) || !files[name].contains("bytes") || !files[name].contains("crc32"))
    corrupted(dir, fmt::format("manifest.json has no size and checksum for {}", name));
  const fs::path p = dir / name;
  if (!fs::exists(p)) corrupted(dir, fmt::format("{} is missing", name));
  const json& entry = files[name];
  if (!entry["bytes"].is_number_unsigned() || !entry["crc32"].is_number_unsigned())
    corrupted(dir, fmt::format("manifest.json has a malformed size or checksum for {}", name));
  const std::string bytes = read_text(p);
  const uint64_t want_bytes = files[name]["bytes"].get<uint64_t>();
  if (bytes.size() != want_bytes)
    corrupted(dir, fmt::format("{} is {} bytes but was saved with {} bytes (truncated or overwritten)", name,
                               bytes.size(), want_bytes));
  const uint32_t got = crc32(bytes.data(), bytes.size()), want = files[name]["crc32"].get<uint32_t>();
  if (got != want) corrupted(dir, fmt::format("{} fails its checksum (crc32 {:08x}, saved {:08x})", name, got, want));
}

// The checkpoint tensor `key` as the F32 tensor of shape `shape`, or a UserError that names it,
// both shapes and the fix.
const Tensor& expect_tensor(const fs::path& dir, const SafetensorsFile& f, const std::string& key,
                            const std::string& what, const Shape& shape) {
  const auto it = f.tensors.find(key);
  if (it == f.tensors.end())
    user_error("checkpoint '{}' has no {} '{}' (shape {} in the current model): it was saved from a different model "
               "configuration. Use the [model]/[moe] settings it was saved with (see its manifest.json config) or "
               "start without checkpoint.load",
               dir.string(), what, key, shape_str(shape));
  if (it->second.shape() != shape || it->second.dtype() != DType::F32)
    user_error("{} '{}' has shape {} ({}) in checkpoint '{}' but shape {} (F32) in the current model: it was saved "
               "from a different model configuration. Use the [model]/[moe] settings it was saved with (see its "
               "manifest.json config) or start without checkpoint.load",
               what, key, shape_str(it->second.shape()), dtype_name(it->second.dtype()), dir.string(),
               shape_str(shape));
  return it->second;
}

}  // namespace

bool checkpoint_is_complete(const std::string& dir) {
  std::error_code ec;
  return fs::is_directory(dir, ec) && fs::exists(fs::path(dir) / kCompleteFile, ec);
}

nlohmann::json read_checkpoint_manifest(const std::string& dir) {
  require_complete(dir);
  return parse_manifest(dir);
}

void save_checkpoint(const std::string& dir_str, const TrainState& state, const SaveOptions& options) {
  FOLDMOE_CHECK(state.dense != nullptr, "save_checkpoint without a dense arena");
  const std::vector<ArenaView> arenas = arenas_of(state);
  for (const ArenaView& av : arenas) check_saveable(av);

  const fs::path dir = fs::path(dir_str).lexically_normal();
  FOLDMOE_CHECK(!dir.filename().empty(), "checkpoint path '{}' has no directory name", dir_str);
  // Never replace something that is not ours (a typo in checkpoint.dir must not delete data).
  if (fs::exists(dir) && !(fs::is_directory(dir) && (fs::is_empty(dir) || fs::exists(dir / kManifestFile))))
    user_error("refusing to save a checkpoint to '{}': it exists and is not a foldmoe checkpoint directory; choose "
               "another checkpoint.dir or move it away",
               dir.string());

  // Assemble the three documents before touching the disk.
  SafetensorsFile model, optim;
  json params = json::array(), buffers = json::array();
  bool has_optimizer = !arenas.empty();
  for (const ArenaView& av : arenas) {
    has_optimizer = has_optimizer && av.m != nullptr;
    for (int i = 0; i < av.arena->size(); ++i) {
      const ParamSpec& s = av.arena->spec(i);
      FOLDMOE_CHECK(!model.tensors.count(s.name), "parameter {} in two arenas", s.name);
      model.tensors[s.name] = param_tensor(*av.arena, av.arena->params(), i);
      params.push_back({{"name", s.name}, {"arena", av.kind}, {"shape", s.global_shape}});
      if (av.m) {
        optim.tensors["adam_m/" + s.name] = param_tensor(*av.arena, av.m->data(), i);
        optim.tensors["adam_v/" + s.name] = param_tensor(*av.arena, av.v->data(), i);
      }
    }
  }
  for (const auto& [name, values] : state.buffers) {
    FOLDMOE_CHECK(!model.tensors.count(name), "buffer {} has the name of a parameter", name);
    model.tensors[name] = Tensor::wrap(const_cast<float*>(values.data()), {int64_t(values.size())}, DType::F32);
    buffers.push_back({{"name", name}, {"shape", {values.size()}}});
  }
  require_finite(model, (dir / kModelFile).string(), "refusing to save");
  require_finite(optim, (dir / kOptimizerFile).string(), "refusing to save");
  model.metadata = {{"format", "pt"}, {"step", std::to_string(state.step)}};
  optim.metadata = {{"step", std::to_string(state.step)}};

  fs::path tmp = dir;
  tmp += ".tmp-" + std::to_string(::getpid());
  const auto after = [&](const char* file) {
    if (options.after_file) options.after_file(file);
  };
  try {
    if (dir.has_parent_path()) fs::create_directories(dir.parent_path());
    fs::remove_all(tmp);  // left by an earlier crashed save of a process with this pid
    fs::create_directory(tmp);
    json files = json::object();
    for (const auto& [name, doc] : {std::pair{kModelFile, &model}, std::pair{kOptimizerFile, &optim}}) {
      write_safetensors((tmp / name).string(), *doc);
      fsync_path(tmp / name, false);
      files[name] = file_entry(tmp / name);
      after(name);
    }
    json manifest = {{"format_version", kCheckpointFormatVersion},
                     {"step", state.step},
                     {"data_position", state.step},
                     {"has_optimizer", has_optimizer},
                     {"parameters", params},
                     {"buffers", buffers},
                     {"files", files},
                     {"config", state.config_toml},
                     {"extra", state.extra}};
    manifest["checksum"] = manifest_checksum(manifest);
    write_text(tmp / kManifestFile, manifest.dump(2) + "\n");
    fsync_path(tmp / kManifestFile, false);
    after(kManifestFile);
    // The marker goes last: its presence means every file above is complete and on disk.
    write_text(tmp / kCompleteFile, fmt::format("foldmoe checkpoint format {} step {}\n", kCheckpointFormatVersion, state.step));
    fsync_path(tmp / kCompleteFile, false);
    fsync_path(tmp, true);
    after(kCompleteFile);
    move_into_place(tmp, dir);
    fsync_path(dir.has_parent_path() ? dir.parent_path() : fs::path("."), true);
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    user_error("saving checkpoint '{}' failed: {}; the previous checkpoint there (if any) is unchanged", dir.string(),
               e.what());
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
}

void load_checkpoint(const std::string& dir_str, TrainState& state) {
  FOLDMOE_CHECK(state.dense != nullptr, "load_checkpoint without a dense arena");
  const std::vector<ArenaView> arenas = arenas_of(state);
  for (const ArenaView& av : arenas) {
    FOLDMOE_CHECK(av.arena->allocated(), "{} arena loaded before allocation", av.kind);
    for (const std::vector<float>* mom : {av.m, av.v})
      FOLDMOE_CHECK(!mom || int64_t(mom->size()) == av.arena->total(), "{} arena moment has {} elements, arena {}",
                    av.kind, mom ? mom->size() : 0, av.arena->total());
  }
  const fs::path dir(dir_str);
  require_complete(dir);
  const json manifest = parse_manifest(dir);
  verify_file(dir, manifest["files"], kModelFile);
  verify_file(dir, manifest["files"], kOptimizerFile);
  const SafetensorsFile model = read_safetensors((dir / kModelFile).string());
  const SafetensorsFile optim = read_safetensors((dir / kOptimizerFile).string());
  require_finite(model, (dir / kModelFile).string(), "cannot load checkpoint:");
  require_finite(optim, (dir / kOptimizerFile).string(), "cannot load checkpoint:");

  // Validate everything before writing anything.
  if (manifest.contains("has_optimizer") && !manifest["has_optimizer"].is_boolean())
    corrupted(dir, "manifest.json has a has_optimizer that is not true or false");
  std::set<std::string> expected;
  for (const ArenaView& av : arenas)
    for (int i = 0; i < av.arena->size(); ++i) {
      const ParamSpec& s = av.arena->spec(i);
      FOLDMOE_CHECK(s.shape == s.global_shape && !s.global_index, "loading into sharded parameter {}", s.name);
      expect_tensor(dir, model, s.name, "parameter", s.global_shape);
      expected.insert(s.name);
      if (av.m || av.v) {
        if (!manifest.value("has_optimizer", false))
          user_error("checkpoint '{}' has no optimizer state (it was saved with weights only); load it for "
                     "evaluation, or start training from it with a fresh optimizer",
                     dir.string());
        expect_tensor(dir, optim, "adam_m/" + s.name, "optimizer state", s.global_shape);
        expect_tensor(dir, optim, "adam_v/" + s.name, "optimizer state", s.global_shape);
      }
    }
  for (const auto& [name, values] : state.buffers) {
    expect_tensor(dir, model, name, "buffer", {int64_t(values.size())});
    expected.insert(name);
  }
  for (const auto& [name, t] : model.tensors)
    if (!expected.count(name))
      user_error("checkpoint '{}' has '{}' (shape {}) that the current model does not have: it was saved from a "
                 "different model configuration. Use the [model]/[moe] settings it was saved with (see its "
                 "manifest.json config) or start without checkpoint.load",
                 dir.string(), name, shape_str(t.shape()));

  // Copy.
  const auto copy_into = [](const Tensor& t, float* dst) {
    if (t.numel()) std::memcpy(dst, t.data<float>(), t.nbytes());
  };
  for (const ArenaView& av : arenas)
    for (int i = 0; i < av.arena->size(); ++i) {
      const std::string& name = av.arena->spec(i).name;
      const int64_t off = av.arena->offset(i);
      copy_into(model.tensors.at(name), av.arena->params() + off);
      if (av.m) copy_into(optim.tensors.at("adam_m/" + name), av.m->data() + off);
      if (av.v) copy_into(optim.tensors.at("adam_v/" + name), av.v->data() + off);
    }
  for (auto& [name, values] : state.buffers) copy_into(model.tensors.at(name), values.data());
  state.step = manifest["step"].get<int64_t>();
  state.config_toml = manifest["config"].get<std::string>();
  state.extra = manifest["extra"];
}

}  // namespace foldmoe::train
