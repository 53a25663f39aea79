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

namespace foldmoe {

// The raw data is copied byte for byte, which is only correct on a little-endian host.
static_assert(std::endian::native == std::endian::little, "safetensors I/O assumes a little-endian host");

namespace {

using nlohmann::json;

// Refuse absurd headers before allocating for them (the Python reader uses the same 100 MB cap).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

bool parse_dtype(const std::string& s, DType& out) {
  for (DType t : {DType::F32, DType::F64, DType::I32, DType::I64, DType::U8})
    if (s == dtype_name(t)) {
      out = t;
      return true;
    }
  return false;
}

[[noreturn]] void corrupt(const std::string& path, const std::string& problem) {
  user_error(
      "safetensors error C4: file '{}' is unreadable: {}. The file is truncated, corrupted or not a safetensors "
      "file; re-create it (or restore it from a copy) and try again.",
      path, problem);
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
  const uint64_t file_size = bytes.size();
  if (file_size < 8)
    corrupt(path, fmt::format("the file is {} bytes long, shorter than the 8-byte header length", file_size));
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  if (header_len > file_size - 8)
    corrupt(path, fmt::format("the header claims {} bytes but only {} bytes follow the length field", header_len,
                              file_size - 8));
  if (header_len > kMaxHeaderBytes)
    corrupt(path, fmt::format("the header claims {} bytes, more than the {}-byte limit", header_len, kMaxHeaderBytes));

  // The header is the JSON object itself, then only the spaces that pad the data to 8 bytes.
  if (header_len == 0 || bytes[8] != '{')
    corrupt(path,
            "the header does not start with '{' right after the length field (the length is off, or this is "
            "not a safetensors file)");
  json header;
  std::string duplicate;
  // nlohmann keeps the last of two equal keys; a header naming a tensor twice is damaged.
  std::set<std::string> names;
  const json::parser_callback_t note_names = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && !names.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  try {
    header = json::parse(bytes.begin() + 8, bytes.begin() + 8 + std::ptrdiff_t(header_len), note_names);
  } catch (const json::exception& e) {  // a syntax error, or a number out of range such as 1e999
    corrupt(path, fmt::format("the JSON header of {} bytes does not parse ({}); a header length that is off by a "
                              "few bytes looks like this",
                              header_len, e.what()));
  }
  if (!duplicate.empty()) corrupt(path, fmt::format("the header names '{}' twice", duplicate));
  if (!header.is_object()) corrupt(path, "the JSON header is not an object");

  const uint64_t data_begin = 8 + header_len;
  const uint64_t data_size = file_size - data_begin;
  SafetensorsFile f;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;

  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) corrupt(path, "'__metadata__' is not an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) corrupt(path, fmt::format("metadata value '{}' is not a string", k));
        f.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      corrupt(path, fmt::format("tensor '{}' lacks one of dtype, shape, data_offsets", name));
    const json& jd = entry["dtype"];
    const json& js = entry["shape"];
    const json& jo = entry["data_offsets"];
    if (!jd.is_string()) corrupt(path, fmt::format("tensor '{}' has a non-string dtype", name));
    DType dtype;
    if (!parse_dtype(jd.get<std::string>(), dtype))
      corrupt(path, fmt::format("tensor '{}' has dtype '{}', which foldmoe does not read (it reads F32, F64, I32, "
                                "I64, U8); convert the tensor to one of these",
                                name, jd.get<std::string>()));
    if (!js.is_array()) corrupt(path, fmt::format("tensor '{}' has a shape that is not a list", name));
    Shape shape;
    // Every dimension is bounded so that the element count below cannot overflow.
    uint64_t numel = 1;
    for (const json& d : js) {
      if (!d.is_number_unsigned()) corrupt(path, fmt::format("tensor '{}' has a negative or non-integer dimension", name));
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (std::numeric_limits<uint64_t>::max() / 16) / v)
        corrupt(path, fmt::format("tensor '{}' has an impossibly large shape {}", name, js.dump()));
      numel *= v;
      shape.push_back(int64_t(v));
    }
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      corrupt(path, fmt::format("tensor '{}' has data_offsets {} instead of two non-negative integers", name, jo.dump()));
    const uint64_t begin = jo[0].get<uint64_t>(), end = jo[1].get<uint64_t>();
    if (begin > end) corrupt(path, fmt::format("tensor '{}' has data_offsets [{}, {}] that end before they begin", name, begin, end));
    if (end > data_size)
      corrupt(path, fmt::format("tensor '{}' has data_offsets [{}, {}] beyond the {} bytes of data in the file", name,
                                begin, end, data_size));
    const uint64_t expected = numel * dtype_size(dtype);
    if (end - begin != expected)
      corrupt(path, fmt::format("tensor '{}' spans {} bytes but its shape {} of {} needs {} bytes", name, end - begin,
                                shape_str(shape), dtype_name(dtype), expected));
    Tensor t = Tensor::empty(shape, dtype);
    if (expected) std::memcpy(t.raw(), bytes.data() + data_begin + begin, expected);
    f.tensors[name] = std::move(t);
    ranges.push_back({begin, end, name});
  }

  // The data section is exactly the tensors back to back: in offset order they start at 0, each
  // begins where the previous one ends, and the last ends where the file ends. Overlaps, gaps and
  // trailing bytes are never produced by a writer; they mean the header or the file is damaged.
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t at = 0;
  std::string previous = "the start of the data";
  for (const Range& r : ranges) {
    if (r.begin < at)
      corrupt(path,
              fmt::format("tensor '{}' [{}, {}] overlaps {}, which ends at {}", r.name, r.begin, r.end, previous, at));
    if (r.begin > at)
      corrupt(path, fmt::format("tensor '{}' starts at data offset {} but {} ends at {}: {} bytes belong to no tensor",
                                r.name, r.begin, previous, at, r.begin - at));
    at = r.end;
    previous = "tensor '" + r.name + "'";
  }
  if (at != data_size)
    corrupt(path, fmt::format("the data section holds {} bytes but the tensors cover {} (trailing bytes after {})",
                              data_size, at, previous));
  return f;
}

}  // namespace foldmoe
