#include "core/safetensors_header.h"

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "core/check.h"

namespace foldmoe {

namespace {
using nlohmann::json;
// Refuse absurd headers before allocating for them (the Python reader uses the same 100 MB cap).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
}  // namespace

size_t safetensors_dtype_size(const std::string& d) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},  {"I32", 4},     {"I16", 2},    {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},   {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  const auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

void safetensors_corrupt(const std::string& path, const std::string& problem) {
  user_error(
      "safetensors error C4: file '{}' is unreadable: {}. The file is truncated, corrupted or not a safetensors "
      "file; re-create it (or restore it from a copy) and try again.",
      path, problem);
}

SafetensorsHeader parse_safetensors_header(const std::string& path, const uint8_t* bytes, uint64_t file_size) {
  const auto corrupt = [&](const std::string& problem) { safetensors_corrupt(path, problem); };
  if (file_size < 8)
    corrupt(fmt::format("the file is {} bytes long, shorter than the 8-byte header length", file_size));
  uint64_t header_len = 0;
  for (int i = 0; i < 8; ++i) header_len |= uint64_t(bytes[i]) << (8 * i);
  if (header_len > file_size - 8)
    corrupt(
        fmt::format("the header claims {} bytes but only {} bytes follow the length field", header_len, file_size - 8));
  if (header_len > kMaxHeaderBytes)
    corrupt(fmt::format("the header claims {} bytes, more than the {}-byte limit", header_len, kMaxHeaderBytes));
  // The header is the JSON object itself, then only the spaces that pad the data to 8 bytes.
  if (header_len == 0 || bytes[8] != '{')
    corrupt(
        "the header does not start with '{' right after the length field (the length is off, or this is not a "
        "safetensors file)");
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
    header = json::parse(bytes + 8, bytes + 8 + header_len, note_names);
  } catch (const json::exception& e) {  // a syntax error, or a number out of range such as 1e999
    corrupt(fmt::format(
        "the JSON header of {} bytes does not parse ({}); a header length that is off by a few bytes looks like this",
        header_len, e.what()));
  }
  if (!duplicate.empty()) corrupt(fmt::format("the header names '{}' twice", duplicate));
  if (!header.is_object()) corrupt("the JSON header is not an object");

  SafetensorsHeader out;
  out.data_begin = 8 + header_len;
  const uint64_t data_size = file_size - out.data_begin;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) corrupt("'__metadata__' is not an object of strings");
      for (const auto& [k, v] : entry.items()) {
        if (!v.is_string()) corrupt(fmt::format("metadata value '{}' is not a string", k));
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") || !entry.contains("data_offsets"))
      corrupt(fmt::format("tensor '{}' lacks one of dtype, shape, data_offsets", name));
    const json& jd = entry["dtype"];
    const json& js = entry["shape"];
    const json& jo = entry["data_offsets"];
    if (!jd.is_string()) corrupt(fmt::format("tensor '{}' has a non-string dtype", name));
    SafetensorsEntry e;
    e.name = name;
    e.dtype = jd.get<std::string>();
    const size_t elem = safetensors_dtype_size(e.dtype);
    if (elem == 0) corrupt(fmt::format("tensor '{}' has dtype '{}', which is not a safetensors dtype", name, e.dtype));
    if (!js.is_array()) corrupt(fmt::format("tensor '{}' has a shape that is not a list", name));
    // Every dimension is bounded so that the element count below cannot overflow.
    uint64_t numel = 1;
    for (const json& d : js) {
      if (!d.is_number_unsigned()) corrupt(fmt::format("tensor '{}' has a negative or non-integer dimension", name));
      const uint64_t v = d.get<uint64_t>();
      if (v != 0 && numel > (std::numeric_limits<uint64_t>::max() / 16) / v)
        corrupt(fmt::format("tensor '{}' has an impossibly large shape {}", name, js.dump()));
      numel *= v;
      e.shape.push_back(int64_t(v));
    }
    if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
      corrupt(fmt::format("tensor '{}' has data_offsets {} instead of two non-negative integers", name, jo.dump()));
    e.begin = jo[0].get<uint64_t>();
    e.end = jo[1].get<uint64_t>();
    if (e.begin > e.end)
      corrupt(fmt::format("tensor '{}' has data_offsets [{}, {}] that end before they begin", name, e.begin, e.end));
    if (e.end > data_size)
      corrupt(fmt::format("tensor '{}' has data_offsets [{}, {}] beyond the {} bytes of data in the file", name,
                          e.begin, e.end, data_size));
    const uint64_t expected = numel * elem;
    if (e.end - e.begin != expected)
      corrupt(fmt::format("tensor '{}' spans {} bytes but its shape {} of {} needs {} bytes", name, e.end - e.begin,
                          shape_str(e.shape), e.dtype, expected));
    out.entries.push_back(std::move(e));
  }

  // The data section is exactly the tensors back to back: in offset order they start at 0, each
  // begins where the previous one ends, and the last ends where the file ends. Overlaps, gaps and
  // trailing bytes are never produced by a writer; they mean the header or the file is damaged.
  std::vector<const SafetensorsEntry*> ranges;
  for (const SafetensorsEntry& e : out.entries) ranges.push_back(&e);
  std::sort(ranges.begin(), ranges.end(),
            [](const auto* a, const auto* b) { return std::tie(a->begin, a->end) < std::tie(b->begin, b->end); });
  uint64_t at = 0;
  std::string previous = "the start of the data";
  for (const SafetensorsEntry* r : ranges) {
    if (r->begin < at)
      corrupt(
          fmt::format("tensor '{}' [{}, {}] overlaps {}, which ends at {}", r->name, r->begin, r->end, previous, at));
    if (r->begin > at)
      corrupt(fmt::format("tensor '{}' starts at data offset {} but {} ends at {}: {} bytes belong to no tensor",
                          r->name, r->begin, previous, at, r->begin - at));
    at = r->end;
    previous = "tensor '" + r->name + "'";
  }
  if (at != data_size)
    corrupt(fmt::format("the data section holds {} bytes but the tensors cover {} (trailing bytes after {})", data_size,
                        at, previous));
  return out;
}

}  // namespace foldmoe
