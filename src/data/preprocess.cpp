#include "data/preprocess.h"

#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "data/indexed_dataset.h"
#include "data/preprocess_input.h"
#include "data/text_tokenizer.h"

namespace foldmoe::data {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

struct BadItem {
  size_t item;
  std::string what;
};

struct TokenizedChunk {
  std::vector<int32_t> tokens;
  std::vector<int32_t> lengths;  // one per kept document
  std::vector<BadItem> bad;
  size_t first_bad = SIZE_MAX;
};

// Length of the valid UTF-8 prefix of s (s.size() when all of it is valid).
size_t valid_utf8_prefix(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return i;
    if (n == 2 && c < 0xC2) return i;  // overlong
    for (int k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) >> 6) != 2) return i;
    if (n == 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xE0 && c1 < 0xA0) || (c == 0xED && c1 >= 0xA0)) return i;  // overlong, surrogate
    }
    if (n == 4) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      if ((c == 0xF0 && c1 < 0x90) || c > 0xF4 || (c == 0xF4 && c1 >= 0x90)) return i;
    }
    i += n;
  }
  return i;
}

TokenizedChunk tokenize_chunk(const InputChunk& chunk, const PreprocessOptions& o, const Tokenizer& tok,
                              std::optional<int32_t> eod) {
  TokenizedChunk out;
  const bool json = o.input_format == "jsonl" && !o.per_file;
  std::string text_holder;
  for (size_t i = 0; i < chunk.items.size(); ++i) {
    const std::string_view raw = chunk.item(i);
    std::string_view text = raw;
    std::string problem;
    if (const size_t ok = valid_utf8_prefix(raw); ok != raw.size()) {
      problem = fmt::format("invalid UTF-8 at byte {}", ok + 1);
    } else if (json) {
      const nlohmann::json j = nlohmann::json::parse(raw, nullptr, false);
      if (j.is_discarded()) {
        problem = raw.find_first_not_of(" \t") == std::string_view::npos ? "an empty line, not a JSON object"
                                                                         : "not valid JSON";
      } else if (!j.is_object()) {
        problem = fmt::format("a JSON {}, not an object", j.type_name());
      } else if (auto it = j.find(o.json_key); it == j.end()) {
        problem = fmt::format("no \"{}\" key", o.json_key);
      } else if (!it->is_string()) {
        problem = fmt::format("\"{}\" is a {}, not a string", o.json_key, it->type_name());
      } else {
        text_holder = it->get<std::string>();
        text = text_holder;
      }
    }
    std::vector<int32_t> ids;
    if (problem.empty()) {
      try {
        ids = tok.encode(text);
      } catch (const UserError& e) {
        problem = fmt::format("the tokenizer cannot encode it: {}", e.what());
      }
      if (problem.empty() && ids.empty()) problem = "an empty document";
    }
    if (!problem.empty()) {
      out.bad.push_back({i, problem});
      continue;
    }
    if (eod) ids.push_back(*eod);
    out.tokens.insert(out.tokens.end(), ids.begin(), ids.end());
    out.lengths.push_back(static_cast<int32_t>(ids.size()));
  }
  return out;
}

std::string where(const InputChunk& c, size_t i) {
  return c.lines[i] > 0 ? fmt::format("{}:{}", c.file_of(i), c.lines[i]) : c.file_of(i);
}

class Progress {
 public:
  Progress(std::FILE* log, const std::string& mode)
      : log_(log),
        tty_(mode == "on" || (mode == "auto" && log != nullptr && isatty(fileno(log)))),
        off_(mode == "off" || log == nullptr),
        start_(std::chrono::steady_clock::now()) {}
  double seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
  // `last`: the final state, drawn on a terminal whatever the time since the previous draw.
  void update(uint64_t done, uint64_t total, int64_t docs, int64_t tokens, uint64_t text, bool last = false) {
    if (off_) return;
    const double t = seconds();
    const double frac = total > 0 ? double(done) / double(total) : 0.0;
    if (tty_) {
      if (t - last_ < 0.2 && !last) return;
      last_ = t;
      const int width = 30, fill = static_cast<int>(frac * width);
      std::fprintf(log_, "\rpreprocess [%s%s] %3.0f%%  %lld docs  %lld tokens  %.1f MB/s ",
                   std::string(fill, '#').c_str(), std::string(width - fill, '.').c_str(), 100 * frac,
                   static_cast<long long>(docs), static_cast<long long>(tokens), text / 1e6 / std::max(t, 1e-9));
      std::fflush(log_);
      drawn_ = true;
    } else if (frac >= next_line_ && (frac < 1 || last)) {  // a plain line every 10%; 100% once done
      while (next_line_ <= frac) next_line_ += 0.1;
      std::fprintf(log_, "preprocess: %3.0f%% of the input, %lld documents, %lld tokens\n", 100 * frac,
                   static_cast<long long>(docs), static_cast<long long>(tokens));
      std::fflush(log_);
    }
  }
  void finish() {
    if (drawn_) std::fprintf(log_, "\n");
  }

 private:
  std::FILE* log_;
  bool tty_, off_, drawn_ = false;
  std::chrono::steady_clock::time_point start_;
  double last_ = -1, next_line_ = 0.1;
};

}  // namespace

namespace {

void check_output_free(const PreprocessOptions& o) {
  if (o.overwrite) return;
  for (const std::string& f : {o.output_prefix + ".bin", o.output_prefix + ".idx"})
    if (std::filesystem::exists(f))
      user_error(
          "data error D12: {} already exists.\n  fix: choose another --output-prefix, or pass --overwrite "
          "to replace {}.bin/.idx",
          f, o.output_prefix);
}

}  // namespace

PreprocessStats preprocess(const PreprocessOptions& o, std::FILE* log) {
  check_output_free(o);  // before the (possibly slow) tokenizer load
  const std::unique_ptr<Tokenizer> tok = load_tokenizer(o.tokenizer);
  return preprocess(o, *tok, log);
}

PreprocessStats preprocess(const PreprocessOptions& o, const Tokenizer& tokenizer, std::FILE* log) {
  FOLDMOE_CHECK(o.input_format == "jsonl" || o.input_format == "text", "input format {}", o.input_format);
  FOLDMOE_CHECK(o.workers >= 1, "workers {}", o.workers);
  check_output_free(o);
  const Tokenizer* tok = &tokenizer;
  std::optional<int32_t> eod;
  if (o.append_eod) {
    eod = tok->eos_id();
    if (!eod)
      user_error(
          "data error D13: --append-eod needs an end-of-document token, and the tokenizer {} has no eos "
          "token.\n  fix: use a tokenizer with an eos token, or leave out --append-eod",
          tok->describe());
  }
  InputReader reader(o.input, o.per_file, o.input_format == "text" || o.per_file);
  IndexedDatasetWriter writer(o.output_prefix, smallest_token_dtype(tok->vocab_size()));
  Progress progress(log, o.progress);
  PreprocessStats stats;

  struct Pending {
    std::shared_ptr<InputChunk> chunk;
    std::future<TokenizedChunk> result;
  };
  std::deque<Pending> queue;
  const auto drain_one = [&] {
    Pending p = std::move(queue.front());
    queue.pop_front();
    TokenizedChunk r = p.result.get();
    if (!r.bad.empty()) {
      if (!o.skip_bad_lines) {
        const BadItem& b = r.bad.front();
        user_error("data error {}: {}: {}.\n  fix: correct the input, or pass --skip-bad-lines to drop such {}",
                   b.what == "an empty document" ? "D6" : "D11", where(*p.chunk, b.item), b.what,
                   o.per_file ? "files" : "lines");
      }
      stats.skipped += static_cast<int64_t>(r.bad.size());
    }
    size_t at = 0;
    for (int32_t len : r.lengths) {
      writer.add_document(std::span<const int32_t>(r.tokens.data() + at, static_cast<size_t>(len)));
      at += static_cast<size_t>(len);
    }
    stats.documents += static_cast<int64_t>(r.lengths.size());
    stats.tokens += static_cast<int64_t>(r.tokens.size());
  };
  while (true) {
    auto chunk = std::make_shared<InputChunk>();
    if (!reader.next(*chunk, kChunkBytes)) break;
    queue.push_back({chunk, std::async(std::launch::async,
                                       [chunk, &o, tok, eod] { return tokenize_chunk(*chunk, o, *tok, eod); })});
    while (queue.size() >= static_cast<size_t>(o.workers)) drain_one();
    progress.update(reader.consumed_bytes(), reader.total_bytes(), stats.documents, stats.tokens, reader.text_bytes());
  }
  while (!queue.empty()) drain_one();
  if (stats.documents == 0)
    user_error("data error D14: {} holds no documents{}.\n  fix: check --input{}", o.input,
               stats.skipped > 0 ? fmt::format(" (all {} were skipped as bad)", stats.skipped) : "",
               o.input_format == "jsonl" && !o.per_file ? " and --json-key" : "");
  writer.finalize();
  if (o.progress != "off")
    progress.update(reader.total_bytes(), reader.total_bytes(), stats.documents, stats.tokens, reader.text_bytes(),
                    /*last=*/true);
  progress.finish();
  stats.input_bytes = reader.text_bytes();
  stats.seconds = progress.seconds();
  if (log != nullptr) {
    const double t = std::max(stats.seconds, 1e-9);
    std::fprintf(log,
                 "preprocess: wrote %s.bin/.idx: %lld documents, %lld tokens (%s)%s; %.1f MB of text in %.2f s: "
                 "%.1f MB/s, %.0f tokens/s\n",
                 o.output_prefix.c_str(), static_cast<long long>(stats.documents), static_cast<long long>(stats.tokens),
                 token_dtype_name(smallest_token_dtype(tok->vocab_size())),
                 stats.skipped > 0
                     ? fmt::format(", {} bad {} skipped", stats.skipped, o.per_file ? "files" : "lines").c_str()
                     : "",
                 stats.input_bytes / 1e6, stats.seconds, stats.input_bytes / 1e6 / t, stats.tokens / t);
  }
  return stats;
}

}  // namespace foldmoe::data
