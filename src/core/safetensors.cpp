// safetensors reader and writer (format: https://huggingface.co/docs/safetensors).
//
// Layout written here, which is also what the Python `safetensors` package writes and reads:
//   [8 bytes: header length N, little-endian u64]
//   [N bytes: JSON object, padded with spaces so that 8 + N is a multiple of 8]
//   [data: tensors back to back, in the header's key order, each at its data_offsets]
// data_offsets are [begin, end) relative to the start of the data section. Tensors are
// little-endian and contiguous (row-major). "__metadata__" maps strings to strings.
//
// Reading trusts nothing: every length and offset is checked against the file before it is used,
// and a problem raises UserError naming the file, what is wrong and what to do about it.
#include "core/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>
#include <vector>

#include "core/check.h"
#include "core/safetensors_header.h"

namespace foldmoe {

// The raw data is copied byte for byte, which is only correct on a little-endian host.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

bool parse_dtype(const std::string& s, DType& out) {
  for (DType t : {DType::F32, DType::F64, DType::I32, DType::I64, DType::U8})
    if (s == dtype_name(t)) {
      out = t;
      return true;
    }
  return false;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  safetensors_corrupt(path, problem);
}

std::vector<char> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) user_error("cannot open safetensors file '{}' for reading: check that the path exists and is readable", path);
  const std::streamoff size = in.tellg();
  if (size < 0) user_error("cannot determine the size of safetensors file '{}'", path);
  std::vector<char> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(bytes.data(), size)) user_error("failed to read safetensors file '{}' ({} bytes)", path, size);
  return bytes;
}

}  // namespace

void write_safetensors(const std::string& path, const SafetensorsFile& f) {
  // Header: std::map iterates names in sorted order, which fixes the data order as well, so the
  // same contents always give the same bytes.
  json header = json::object();
  uint64_t offset = 0;
  for (const auto& [name, t] : f.tensors) {
    FOLDMOE_CHECK(t.defined(), "tensor '{}' written to {} is undefined", name, path);
    FOLDMOE_CHECK(name != "__metadata__", "'__metadata__' is reserved in safetensors ({})", path);
    const uint64_t n = t.nbytes();
    header[name] = {{"dtype", dtype_name(t.dtype())}, {"shape", t.shape()}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  if (!f.metadata.empty()) {
    json meta = json::object();
    for (const auto& [k, v] : f.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  std::string text = header.dump();
  // Pad with spaces (valid JSON whitespace) so the data section starts 8-byte aligned.
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');

  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out)
    user_error("cannot create safetensors file '{}': {}; check that the directory exists and is writable", path,
               std::strerror(errno));
  const uint64_t n = text.size();
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out.write(text.data(), std::streamsize(text.size()));
  for (const auto& [name, t] : f.tensors)
    if (t.nbytes()) out.write(static_cast<const char*>(const_cast<Tensor&>(t).raw()), std::streamsize(t.nbytes()));
  out.flush();
  if (!out) user_error("failed while writing safetensors file '{}': {}", path, std::strerror(errno));
}

SafetensorsFile read_safetensors(const std::string& path) {
  const std::vector<char> bytes = read_whole_file(path);
  const SafetensorsHeader header =
      parse_safetensors_header(path, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  SafetensorsFile f;
  f.metadata = header.metadata;
  for (const SafetensorsEntry& e : header.entries) {
    DType dtype;
    if (!parse_dtype(e.dtype, dtype))
      corrupt(path, fmt::format("tensor '{}' has dtype '{}', which foldmoe does not read (it reads F32, F64, I32, "
                                "I64, U8); convert the tensor to one of these",
                                e.name, e.dtype));
    Tensor t = Tensor::empty(e.shape, dtype);
    if (e.end > e.begin) std::memcpy(t.raw(), bytes.data() + header.data_begin + e.begin, e.end - e.begin);
    f.tensors[e.name] = std::move(t);
  }
  return f;
}

}  // namespace foldmoe
