#include "data/tokenizers/hf_tokenizer.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>
#include <stdexcept>

#include "core/check.h"
#include "data/tokenizers/added_tokens.h"
#include "data/tokenizers/bpe.h"
#include "data/tokenizers/components.h"
#include "data/tokenizers/json_reader.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data {
namespace {

using tok::join_path;
using tok::json;
using tok::JsonReader;

constexpr int64_t kMaxId = (int64_t(1) << 26) - 1;  // ids index a table: refuse absurd ones
const char* const kRepair = "repair the file (save it again with HF tokenizers' Tokenizer.save)";

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error("tokenizer error K3: cannot read '{}'\n  fix: pass a readable tokenizer file", path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

json parse(const std::string& path) {
  try {
    return json::parse(read_text(path));
  } catch (const json::parse_error& e) {
    user_error("tokenizer error K4: {} is not valid JSON ({})\n  fix: {}", path, e.what(), kRepair);
  }
}

struct Parts {
  tok::Vocab vocab;
  std::vector<std::pair<std::string, std::string>> merges;
  tok::BpeOptions options;
};

Parts read_bpe(const JsonReader& r, const json& model) {
  const std::string path = "model";
  r.object(model, path);
  const auto type = r.opt_string(model, path, "type");
  if (type && *type != "BPE")
    r.fail("K5", "model.type", fmt::format("model type \"{}\" is not supported by foldmoe", *type),
           "use a BPE tokenizer (WordPiece, Unigram and WordLevel models are not implemented; a Unigram "
           "SentencePiece model can be passed as its .model file)");
  if (const json* d = r.find(model, path, "dropout")) {
    if (!d->is_number()) r.wrong_type("model.dropout", *d, "a number or null");
    if (d->get<double>() != 0.0)
      r.fail("K5", "model.dropout", fmt::format("BPE dropout {} makes encoding random", d->dump()),
             "set \"dropout\": null (foldmoe encodes deterministically)");
  }
  Parts p;
  p.options.unk_token = r.opt_string(model, path, "unk_token");
  p.options.continuing_subword_prefix = r.opt_string(model, path, "continuing_subword_prefix");
  p.options.end_of_word_suffix = r.opt_string(model, path, "end_of_word_suffix");
  p.options.fuse_unk = r.opt_bool(model, path, "fuse_unk", false);
  p.options.byte_fallback = r.opt_bool(model, path, "byte_fallback", false);
  p.options.ignore_merges = r.opt_bool(model, path, "ignore_merges", false);
  const json& vocab = r.object(r.require(model, path, "vocab"), "model.vocab");
  p.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items())
    p.vocab[token] = int32_t(r.integer(id, fmt::format("model.vocab[{}]", json(token).dump()), 0, kMaxId));
  const json* merges = r.find(model, path, "merges");
  if (merges) {
    r.array(*merges, "model.merges");
    p.merges.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      const json& m = (*merges)[i];
      const std::string mp = join_path("model.merges", i);
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const size_t space = s.find(' ');
        if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
          r.fail("K7", mp, fmt::format("the merge {} is not two tokens separated by one space", m.dump()), kRepair);
        p.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        p.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
      } else {
        r.wrong_type(mp, m, "\"left right\" or [\"left\", \"right\"]");
      }
    }
  }
  return p;
}

std::vector<tok::AddedToken> read_added_tokens(const JsonReader& r, const json& root) {
  std::vector<tok::AddedToken> out;
  const json* list = r.find(root, "", "added_tokens");
  if (!list) return out;
  r.array(*list, "added_tokens");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string p = join_path("added_tokens", i);
    const json& t = r.object((*list)[i], p);
    tok::AddedToken a;
    a.id = int32_t(r.integer(r.require(t, p, "id"), join_path(p, "id"), 0, kMaxId));
    a.content = r.string(r.require(t, p, "content"), join_path(p, "content"));
    if (a.content.empty()) r.fail("K4", join_path(p, "content"), "an added token cannot be empty", kRepair);
    a.single_word = r.opt_bool(t, p, "single_word", false);
    a.lstrip = r.opt_bool(t, p, "lstrip", false);
    a.rstrip = r.opt_bool(t, p, "rstrip", false);
    a.special = r.opt_bool(t, p, "special", false);
    a.normalized = r.opt_bool(t, p, "normalized", !a.special);
    out.push_back(a);
  }
  return out;
}

// The special token a TemplateProcessing post-processor puts before (bos) and after (eos) a single
// sequence, if any: foldmoe adds bos itself, so these only name the ids.
std::pair<std::optional<std::string>, std::optional<std::string>> template_specials(const JsonReader& r,
                                                                                    const json& pp) {
  std::optional<std::string> before, after;
  if (pp.is_null()) return {before, after};
  const auto type = r.opt_string(pp, "post_processor", "type");
  if (type && *type == "Sequence" && pp.contains("processors") && pp["processors"].is_array()) {
    // Llama-3: Sequence[ByteLevel, TemplateProcessing].
    for (const json& p : pp["processors"]) {
      const auto found = template_specials(r, p);
      if (found.first || found.second) return found;
    }
    return {before, after};
  }
  if (!type || *type != "TemplateProcessing") return {before, after};
  const json* single = r.find(pp, "post_processor", "single");
  if (!single || !single->is_array()) return {before, after};
  bool seen_sequence = false;
  for (const json& item : *single) {
    if (!item.is_object()) continue;
    if (item.contains("Sequence")) seen_sequence = true;
    const auto st = item.find("SpecialToken");
    if (st != item.end() && st->is_object() && st->contains("id") && (*st)["id"].is_string()) {
      const std::string id = (*st)["id"].get<std::string>();
      if (!seen_sequence && !before) before = id;
      if (seen_sequence) after = id;
    }
  }
  return {before, after};
}

// bos_token / eos_token / pad_token of tokenizer_config.json: a string, {"content": ...} or null.
std::optional<std::string> config_token(const JsonReader& r, const json& cfg, const char* key) {
  const json* j = r.find(cfg, "", key);
  if (!j) return std::nullopt;
  if (j->is_object()) return r.string(r.require(*j, key, "content"), join_path(key, "content"));
  return r.string(*j, key);
}

class HfTokenizer final : public Tokenizer {
 public:
  HfTokenizer(const std::string& path, const std::string& config_path) : path_(path) {
    const JsonReader r(path);
    const json root = parse(path);
    r.object(root, "");
    Parts parts = read_bpe(r, r.require(root, "", "model"));
    try {
      bpe_ = std::make_unique<tok::Bpe>(std::move(parts.vocab), parts.merges, parts.options);
    } catch (const std::invalid_argument& e) {
      r.fail("K7", "model.merges", e.what(), "every merge joins two vocabulary tokens into a vocabulary token");
    }
    if (parts.options.unk_token && !bpe_->id_of(*parts.options.unk_token))
      r.fail("K7", "model.unk_token", fmt::format("{} is not in the vocabulary", json(*parts.options.unk_token).dump()),
             "name a vocabulary token as unk_token, or set it to null");
    if (parts.options.unk_token) unk_ = bpe_->id_of(*parts.options.unk_token);
    const json null;
    const auto member = [&](const char* key) -> const json& {
      const json* j = r.find(root, "", key);
      return j ? *j : null;
    };
    normalizer_ = tok::build_normalizer(r, member("normalizer"), "normalizer");
    pre_tokenizer_ = tok::build_pre_tokenizer(r, member("pre_tokenizer"), "pre_tokenizer");
    decoder_ = tok::build_decoder(r, member("decoder"), "decoder");
    const std::vector<tok::AddedToken> added = read_added_tokens(r, root);

    // id -> token: the model's vocabulary, overridden by added tokens (HF looks there first).
    int64_t size = 0;
    for (const auto& [t, id] : bpe_->vocab()) size = std::max<int64_t>(size, id + 1);
    for (const auto& a : added) size = std::max<int64_t>(size, a.id + 1);
    id_to_token_.resize(size_t(size));
    known_.assign(size_t(size), false);
    for (const auto& [t, id] : bpe_->vocab()) id_to_token_[id] = t, known_[id] = true;
    std::vector<tok::AddedToken> plain, normalized;
    std::vector<std::string> plain_patterns, normalized_patterns;
    for (const auto& a : added) {
      id_to_token_[a.id] = a.content, known_[a.id] = true;
      if (a.normalized) {
        normalized.push_back(a);
        normalized_patterns.push_back(normalizer_ ? normalizer_(a.content) : a.content);
      } else {
        plain.push_back(a);
        plain_patterns.push_back(a.content);
      }
    }
    plain_tokens_ = std::make_unique<tok::AddedTokenMatcher>(plain, plain_patterns);
    normalized_tokens_ = std::make_unique<tok::AddedTokenMatcher>(normalized, normalized_patterns);

    // bos/eos/pad: tokenizer_config.json when there is one, else the post-processor's template.
    std::optional<std::string> bos, eos, pad;
    if (!config_path.empty()) {
      const JsonReader c(config_path);
      const json cfg = parse(config_path);
      c.object(cfg, "");
      bos = config_token(c, cfg, "bos_token");
      eos = config_token(c, cfg, "eos_token");
      pad = config_token(c, cfg, "pad_token");
      bos_ = resolve(c, bos, "bos_token");
      eos_ = resolve(c, eos, "eos_token");
      pad_ = resolve(c, pad, "pad_token");
    } else {
      std::tie(bos, eos) = template_specials(r, member("post_processor"));
      bos_ = resolve(r, bos, "post_processor.single");
      eos_ = resolve(r, eos, "post_processor.single");
    }
  }

  int32_t vocab_size() const override { return int32_t(id_to_token_.size()); }

  std::vector<int32_t> encode(std::string_view input) const override {
    // A str in HF is always valid UTF-8; invalid bytes here read as U+FFFD.
    const std::string text = tok::is_valid_utf8(input) ? std::string(input) : tok::utf8_lossy(input);
    std::vector<int32_t> ids;
    ids.reserve(text.size() / 3 + 4);
    for_each_segment(*plain_tokens_, text, ids, [&](std::string_view seg, bool at_origin) {
      const std::string normalized = normalizer_ ? normalizer_(std::string(seg)) : std::string(seg);
      for_each_segment(*normalized_tokens_, normalized, ids, [&](std::string_view piece, bool first) {
        std::vector<tok::Piece> pieces{{std::string(piece), at_origin && first}};
        if (pre_tokenizer_) pre_tokenizer_(pieces);
        for (const tok::Piece& p : pieces) bpe_->tokenize(p.text, ids);
      });
    });
    return ids;
  }

  std::string decode(std::span<const int32_t> ids) const override {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] < 0 || ids[i] >= vocab_size() || !known_[size_t(ids[i])])
        user_error("tokenizer error K2: id {} at position {} is not in the vocabulary of {} ({} ids)", ids[i], i, path_,
                   vocab_size());
      tokens.push_back(id_to_token_[size_t(ids[i])]);
    }
    if (!decoder_) {
      std::string out;
      for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
      return out;
    }
    decoder_(tokens);
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
  }

  std::string token_name(int32_t id) const override {
    if (id < 0 || id >= vocab_size() || !known_[size_t(id)]) return fmt::format("<id {} out of range>", id);
    return id_to_token_[size_t(id)];
  }
  std::optional<int32_t> bos_id() const override { return bos_; }
  std::optional<int32_t> eos_id() const override { return eos_; }
  std::optional<int32_t> pad_id() const override { return pad_; }
  std::optional<int32_t> unk_id() const override { return unk_; }
  std::string describe() const override { return fmt::format("tokenizer.json {} ({} ids, BPE)", path_, vocab_size()); }

 private:
  std::optional<int32_t> id_of(const std::string& token) const {
    for (size_t i = 0; i < id_to_token_.size(); ++i)
      if (known_[i] && id_to_token_[i] == token) return int32_t(i);
    return std::nullopt;
  }

  std::optional<int32_t> resolve(const JsonReader& r, const std::optional<std::string>& token, const char* path) const {
    if (!token) return std::nullopt;
    const auto id = id_of(*token);
    if (!id)
      r.fail("K8", path, fmt::format("the token {} is not in the vocabulary of {}", json(*token).dump(), path_),
             "name a token of the tokenizer's vocabulary or added_tokens");
    return id;
  }

  // Calls `text(piece, at_origin)` for the text between added tokens and appends the tokens' ids.
  template <typename F>
  static void for_each_segment(const tok::AddedTokenMatcher& m, std::string_view s, std::vector<int32_t>& ids, F text) {
    if (s.empty()) return;
    if (m.empty()) return text(s, true);
    for (const tok::Segment& seg : m.split(s)) {
      if (seg.token)
        ids.push_back(*seg.token);
      else
        text(s.substr(seg.begin, seg.end - seg.begin), seg.begin == 0);
    }
  }

  std::string path_;
  std::unique_ptr<tok::Bpe> bpe_;
  tok::Normalizer normalizer_;
  tok::PreTokenizer pre_tokenizer_;
  tok::Decoder decoder_;
  std::unique_ptr<tok::AddedTokenMatcher> plain_tokens_, normalized_tokens_;
  std::vector<std::string> id_to_token_;
  std::vector<bool> known_;
  std::optional<int32_t> bos_, eos_, pad_, unk_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path, const std::string& config_path) {
  try {
    return std::make_unique<HfTokenizer>(json_path, config_path);
  } catch (const json::exception& e) {
    // The typed readers check every access; this is the net for anything they missed.
    user_error("tokenizer error K4: {}: {}\n  fix: {}", json_path, e.what(), kRepair);
  }
}

}  // namespace foldmoe::data
