#include "train/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>

#include "core/check.h"
#include "core/crc32c.h"

namespace foldmoe {

namespace {

// Protobuf wire format, the few field kinds an Event needs.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(char(uint8_t(v) | 0x80));
    v >>= 7;
  }
  out.push_back(char(v));
}
void put_tag(std::string& out, int field, int wire_type) {
  put_varint(out, uint64_t(field) << 3 | uint64_t(wire_type));
}
template <typename T>
void put_fixed(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));  // little-endian on every platform foldmoe builds for
  out.append(b, sizeof(T));
}
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_tag(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}

// Event fields: 1 wall_time (double), 2 step (int64), 3 file_version, 5 summary, 7 session_log.
std::string event_header(double wall_time, int64_t step) {
  std::string e;
  put_tag(e, 1, 1);
  put_fixed(e, wall_time);
  put_tag(e, 2, 0);
  put_varint(e, uint64_t(step));
  return e;
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void flatten(const nlohmann::ordered_json& v, const std::string& tag,
             std::vector<std::pair<std::string, double>>& out) {
  if (v.is_number()) {
    out.emplace_back(tag, v.get<double>());
  } else if (v.is_boolean()) {
    out.emplace_back(tag, v.get<bool>() ? 1.0 : 0.0);
  } else if (v.is_object()) {
    for (const auto& [k, x] : v.items()) flatten(x, tag.empty() ? k : tag + "/" + k, out);
  } else if (v.is_array()) {
    for (size_t i = 0; i < v.size(); ++i) flatten(v[i], tag + "/" + std::to_string(i), out);
  }
}

}  // namespace

std::vector<std::pair<std::string, double>> flatten_scalars(const nlohmann::ordered_json& record) {
  std::vector<std::pair<std::string, double>> out;
  // Rows of several kinds share steps (RL: "type" = "train" | "eval"): the kind prefixes the tags.
  const auto type = record.find("type");
  const std::string prefix = type != record.end() && type->is_string() ? type->get<std::string>() + "/" : "";
  for (const auto& [k, v] : record.items())
    if (k != "step") flatten(v, prefix + k, out);
  return out;
}

std::string encode_scalar_event(double wall_time, int64_t step,
                                const std::vector<std::pair<std::string, double>>& scalars) {
  // Summary { repeated Value value = 1 }, Value { string tag = 1; float simple_value = 2 }.
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_tag(v, 2, 5);
    put_fixed(v, float(value));
    put_bytes(summary, 1, v);
  }
  std::string e = event_header(wall_time, step);
  put_bytes(e, 5, summary);
  return e;
}

std::string tfrecord_frame(const std::string& payload) {
  std::string out;
  const uint64_t n = payload.size();
  put_fixed(out, n);
  put_fixed(out, masked_crc32c(&n, sizeof n));
  out += payload;
  put_fixed(out, masked_crc32c(payload.data(), payload.size()));
  return out;
}

TensorBoardWriter::TensorBoardWriter(const std::string& run_dir, int64_t first_step) {
  const std::filesystem::path dir = std::filesystem::path(run_dir) / "tensorboard";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec)
    user_error("cannot create {}: {}\n  fix: choose a writable [train] run_dir or set [log] tensorboard = false",
               dir.string(), ec.message());
  char host[256] = "localhost";
  (void)gethostname(host, sizeof host - 1);
  const double t = now_seconds();
  path_ = (dir / fmt::format("events.out.tfevents.{}.{}.{}.foldmoe", int64_t(t), host, getpid())).string();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0)
    user_error("cannot create {}: {}\n  fix: choose a writable [train] run_dir or set [log] tensorboard = false", path_,
               std::strerror(errno));
  std::string version = event_header(t, 0);
  put_bytes(version, 3, "brain.Event:2");
  append(version);
  if (first_step > 1) {
    // SessionLog { status = 1 (START) }: TensorBoard purges the earlier files' steps >= first_step.
    std::string session_log;
    put_tag(session_log, 1, 0);
    put_varint(session_log, 1);
    std::string e = event_header(t, first_step);
    put_bytes(e, 7, session_log);
    append(e);
  }
}

TensorBoardWriter::~TensorBoardWriter() {
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::write(const nlohmann::ordered_json& record) {
  if (!record.contains("step") || !record["step"].is_number_integer()) return;
  append(encode_scalar_event(now_seconds(), record["step"].get<int64_t>(), flatten_scalars(record)));
}

void TensorBoardWriter::append(const std::string& event) {
  const std::string frame = tfrecord_frame(event);
  size_t done = 0;
  while (done < frame.size()) {
    const ssize_t w = ::write(fd_, frame.data() + done, frame.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      user_error("cannot write {}: {}\n  fix: free space on that file system, then resume from the last checkpoint",
                 path_, std::strerror(w < 0 ? errno : ENOSPC));
    done += size_t(w);
  }
}

}  // namespace foldmoe
