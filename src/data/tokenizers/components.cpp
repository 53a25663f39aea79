#include "data/tokenizers/components.h"

#include <fmt/format.h>
#include <unicode/uchar.h>

#include <memory>
#include <stdexcept>

#include "core/check.h"
#include "data/tokenizers/regex.h"
#include "data/tokenizers/split.h"
#include "data/tokenizers/unicode_norm.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {

const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

const char* const kRepair = "repair the file (save it again with HF tokenizers' Tokenizer.save)";

[[noreturn]] void unsupported(const JsonReader& r, const std::string& path, const std::string& kind,
                              const std::string& type, const char* supported) {
  r.fail("K5", path, fmt::format("{} type \"{}\" is not supported by foldmoe", kind, type),
         fmt::format("use a tokenizer whose {} is one of: {} (docs/tokenizers.md)", kind, supported));
}

std::shared_ptr<Regex> compile(const JsonReader& r, const std::string& pattern, const std::string& path) {
  try {
    return std::make_shared<Regex>(pattern);
  } catch (const std::invalid_argument& e) {
    r.fail("K6", path, fmt::format("the regex {} does not compile: {}", json(pattern).dump(), e.what()),
           "write a valid regex (PCRE2 / Oniguruma syntax)");
  }
}

// A pattern object: {"String": literal} or {"Regex": regex}.
std::shared_ptr<Regex> pattern(const JsonReader& r, const json& obj, const std::string& path) {
  const json& p = r.require(obj, path, "pattern");
  const std::string pp = join_path(path, "pattern");
  if (const json* s = r.find(p, pp, "String"))
    return compile(r, regex_escape(r.string(*s, join_path(pp, "String"))), pp);
  if (const json* s = r.find(p, pp, "Regex")) return compile(r, r.string(*s, join_path(pp, "Regex")), pp);
  r.fail("K4", pp, "needs a \"String\" or a \"Regex\" member", kRepair);
}

// Every match of `re` in `text` replaced by `content`.
std::string replace_all(const Regex& re, const std::string& text, const std::string& content) {
  const auto matches = re.find_all(text);
  if (matches.empty()) return text;
  std::string out;
  size_t prev = 0;
  for (const auto& [b, e] : matches) {
    out.append(text, prev, b - prev);
    out += content;
    prev = e;
  }
  out.append(text, prev, std::string::npos);
  return out;
}

std::vector<std::pair<size_t, size_t>> find_all_checked(const Regex& re, std::string_view text) {
  try {
    return re.find_all(text);
  } catch (const std::runtime_error& e) {
    throw UserError(
        fmt::format("tokenizer error K6: the regex {} failed on a text of {} bytes: {}\n  fix: simplify the "
                    "regex of the tokenizer file",
                    json(re.pattern()).dump(), text.size(), e.what()));
  }
}

std::string type_of(const JsonReader& r, const json& j, const std::string& path) {
  return r.string(r.require(j, path, "type"), join_path(path, "type"));
}

// A single character (Metaspace replacement, Strip content).
std::string one_char(const JsonReader& r, const json& j, const std::string& path) {
  std::string s = r.string(j, path);
  if (s.empty() || utf8_char_len(s, 0) != s.size()) r.fail("K4", path, "must be exactly one character", kRepair);
  return s;
}

std::string prepend_scheme(const JsonReader& r, const json& j, const std::string& path) {
  if (auto s = r.opt_string(j, path, "prepend_scheme")) {
    if (*s != "always" && *s != "first" && *s != "never")
      r.fail("K4", join_path(path, "prepend_scheme"), fmt::format("\"{}\" is not always, first or never", *s), kRepair);
    return *s;
  }
  return r.opt_bool(j, path, "add_prefix_space", true) ? "always" : "never";
}

// Applies `cut` (text -> kept [begin, end) ranges) to every piece.
template <typename Cut>
void split_pieces(std::vector<Piece>& pieces, Cut cut) {
  std::vector<Piece> out;
  out.reserve(pieces.size());
  for (Piece& p : pieces)
    for (const auto& [b, e] : cut(p.text)) out.push_back({p.text.substr(b, e - b), p.at_origin && b == 0});
  pieces = std::move(out);
}

SplitBehavior behavior(const JsonReader& r, const json& j, const std::string& path) {
  const std::string s = r.string(r.require(j, path, "behavior"), join_path(path, "behavior"));
  if (s == "Removed") return SplitBehavior::Removed;
  if (s == "Isolated") return SplitBehavior::Isolated;
  if (s == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
  if (s == "MergedWithNext") return SplitBehavior::MergedWithNext;
  if (s == "Contiguous") return SplitBehavior::Contiguous;
  r.fail("K4", join_path(path, "behavior"), fmt::format("\"{}\" is not a split behavior", s),
         "use Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous");
}

bool is_numeric(char32_t c) {
  const int8_t t = u_charType(UChar32(c));
  return t == U_DECIMAL_DIGIT_NUMBER || t == U_LETTER_NUMBER || t == U_OTHER_NUMBER;
}

}  // namespace

Normalizer build_normalizer(const JsonReader& r, const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = type_of(r, j, path);
  if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    const NormalForm f = type == "NFC"    ? NormalForm::NFC
                         : type == "NFD"  ? NormalForm::NFD
                         : type == "NFKC" ? NormalForm::NFKC
                                          : NormalForm::NFKD;
    return [f](std::string s) { return unicode_normalize(s, f); };
  }
  if (type == "Lowercase") return [](std::string s) { return unicode_lowercase(s); };
  if (type == "Prepend") {
    const std::string pre = r.string(r.require(j, path, "prepend"), join_path(path, "prepend"));
    return [pre](std::string s) { return s.empty() ? s : pre + s; };
  }
  if (type == "Replace") {
    auto re = pattern(r, j, path);
    const std::string content = r.string(r.require(j, path, "content"), join_path(path, "content"));
    return [re, content](std::string s) { return replace_all(*re, s, content); };
  }
  if (type == "Strip") {
    const bool left = r.opt_bool(j, path, "strip_left", false), right = r.opt_bool(j, path, "strip_right", false);
    return [left, right](std::string s) {
      size_t b = 0, e = s.size();
      if (left)
        while (b < e) {
          size_t i = b;
          if (!is_unicode_whitespace(next_code_point(s, i))) break;
          b = i;
        }
      if (right)
        while (e > b) {
          size_t k = e - 1;
          while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
          size_t i = k;
          if (!is_unicode_whitespace(next_code_point(s, i))) break;
          e = k;
        }
      return s.substr(b, e - b);
    };
  }
  if (type == "Sequence") {
    const std::string p = join_path(path, "normalizers");
    const json& list = r.array(r.require(j, path, "normalizers"), p);
    std::vector<Normalizer> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto n = build_normalizer(r, r.object(list[i], join_path(p, i)), join_path(p, i))) parts.push_back(n);
    return [parts](std::string s) {
      for (const auto& n : parts) s = n(std::move(s));
      return s;
    };
  }
  unsupported(r, join_path(path, "type"), "normalizer", type,
              "NFC, NFD, NFKC, NFKD, Lowercase, Prepend, Replace, Strip, Sequence");
}

PreTokenizer build_pre_tokenizer(const JsonReader& r, const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = type_of(r, j, path);
  if (type == "ByteLevel") {
    const bool prefix = r.opt_bool(j, path, "add_prefix_space", true),
               use_regex = r.opt_bool(j, path, "use_regex", true);
    std::shared_ptr<Regex> re = use_regex ? std::make_shared<Regex>(kGpt2Regex) : nullptr;
    return [prefix, re](std::vector<Piece>& pieces) {
      if (prefix)
        for (Piece& p : pieces)
          if (p.text.empty() || p.text[0] != ' ') p.text.insert(0, 1, ' ');
      if (re)
        split_pieces(pieces, [&](const std::string& t) {
          return apply_behavior(spans_from_matches(t, find_all_checked(*re, t)), SplitBehavior::Isolated, false);
        });
      const ByteLevelTable& table = byte_level_table();
      for (Piece& p : pieces) {
        std::string mapped;
        mapped.reserve(p.text.size() * 2);
        for (unsigned char c : p.text) mapped += table.byte_to_utf8[c];
        p.text = std::move(mapped);
      }
    };
  }
  if (type == "Split") {
    auto re = pattern(r, j, path);
    const SplitBehavior b = behavior(r, j, path);
    const bool invert = r.opt_bool(j, path, "invert", false);
    return [re, b, invert](std::vector<Piece>& pieces) {
      split_pieces(pieces, [&](const std::string& t) {
        return apply_behavior(spans_from_matches(t, find_all_checked(*re, t)), b, invert);
      });
    };
  }
  if (type == "Metaspace") {
    const std::string rep = one_char(r, r.require(j, path, "replacement"), join_path(path, "replacement"));
    const std::string scheme = prepend_scheme(r, j, path);
    const bool split = r.opt_bool(j, path, "split", true);
    size_t k = 0;
    const char32_t rep_cp = next_code_point(rep, k);
    return [rep, rep_cp, scheme, split](std::vector<Piece>& pieces) {
      for (Piece& p : pieces) {
        std::string t;
        for (char c : p.text)
          if (c == ' ')
            t += rep;
          else
            t += c;
        const bool starts = t.compare(0, rep.size(), rep) == 0;
        if (!starts && (scheme == "always" || (scheme == "first" && p.at_origin))) t.insert(0, rep);
        p.text = std::move(t);
      }
      if (split)
        split_pieces(pieces, [&](const std::string& t) {
          return apply_behavior(spans_from_chars(t, [&](char32_t c) { return c == rep_cp; }),
                                SplitBehavior::MergedWithNext, false);
        });
    };
  }
  if (type == "Digits") {
    const bool individual = r.opt_bool(j, path, "individual_digits", false);
    return [individual](std::vector<Piece>& pieces) {
      split_pieces(pieces, [&](const std::string& t) {
        return apply_behavior(spans_from_chars(t, is_numeric),
                              individual ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false);
      });
    };
  }
  if (type == "Sequence") {
    const std::string p = join_path(path, "pretokenizers");
    const json& list = r.array(r.require(j, path, "pretokenizers"), p);
    std::vector<PreTokenizer> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto n = build_pre_tokenizer(r, r.object(list[i], join_path(p, i)), join_path(p, i))) parts.push_back(n);
    return [parts](std::vector<Piece>& pieces) {
      for (const auto& n : parts) n(pieces);
    };
  }
  unsupported(r, join_path(path, "type"), "pre-tokenizer", type, "ByteLevel, Split, Metaspace, Digits, Sequence");
}

Decoder build_decoder(const JsonReader& r, const json& j, const std::string& path) {
  if (j.is_null()) return {};
  const std::string type = type_of(r, j, path);
  if (type == "ByteLevel") {
    return [](std::vector<std::string>& tokens) {
      const ByteLevelTable& table = byte_level_table();
      std::string bytes;
      for (const std::string& t : tokens) {
        const size_t mark = bytes.size();
        bool all = true;
        for (size_t i = 0; i < t.size();) {
          const char32_t cp = next_code_point(t, i);
          const int b = cp < 512 ? table.code_point_to_byte[cp] : -1;
          if (b < 0) {
            all = false;
            break;
          }
          bytes += char(b);
        }
        if (!all) {
          bytes.resize(mark);
          bytes += t;
        }
      }
      tokens = {utf8_lossy(bytes)};
    };
  }
  if (type == "Metaspace") {
    const std::string rep = one_char(r, r.require(j, path, "replacement"), join_path(path, "replacement"));
    const bool drop_first = prepend_scheme(r, j, path) != "never";
    return [rep, drop_first](std::vector<std::string>& tokens) {
      for (size_t i = 0; i < tokens.size(); ++i) {
        std::string out;
        const std::string& t = tokens[i];
        for (size_t k = 0; k < t.size();) {
          if (t.compare(k, rep.size(), rep) == 0) {
            if (!(i == 0 && drop_first)) out += ' ';
            k += rep.size();
          } else {
            out += t[k++];
          }
        }
        tokens[i] = std::move(out);
      }
    };
  }
  if (type == "ByteFallback") {
    return [](std::vector<std::string>& tokens) {
      std::vector<std::string> out;
      std::string pending;
      const auto flush = [&] {
        if (pending.empty()) return;
        if (is_valid_utf8(pending))
          out.push_back(pending);
        else
          for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD");
        pending.clear();
      };
      const auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
      };
      for (std::string& t : tokens) {
        const bool byte =
            t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>' && hex(t[3]) >= 0 && hex(t[4]) >= 0;
        if (byte) {
          pending += char(hex(t[3]) * 16 + hex(t[4]));
        } else {
          flush();
          out.push_back(std::move(t));
        }
      }
      flush();
      tokens = std::move(out);
    };
  }
  if (type == "Fuse") {
    return [](std::vector<std::string>& tokens) {
      std::string all;
      for (const auto& t : tokens) all += t;
      tokens = {all};
    };
  }
  if (type == "Strip") {
    const std::string content = one_char(r, r.require(j, path, "content"), join_path(path, "content"));
    const int64_t start = r.integer(r.require(j, path, "start"), join_path(path, "start"), 0, 1 << 30);
    const int64_t stop = r.integer(r.require(j, path, "stop"), join_path(path, "stop"), 0, 1 << 30);
    return [content, start, stop](std::vector<std::string>& tokens) {
      for (std::string& t : tokens) {
        std::vector<std::pair<size_t, size_t>> chars;  // [begin, end) of each character
        for (size_t i = 0; i < t.size();) {
          const size_t b = i;
          i += utf8_char_len(t, i);
          chars.emplace_back(b, i);
        }
        const auto is_content = [&](size_t c) {
          return t.compare(chars[c].first, chars[c].second - chars[c].first, content) == 0;
        };
        size_t cut_start = 0, cut_stop = chars.size();
        for (size_t c = 0; c < chars.size() && c < size_t(start) && is_content(c); ++c) cut_start = c + 1;
        for (size_t k = 0; k < size_t(stop) && k < chars.size(); ++k) {
          const size_t c = chars.size() - k - 1;
          if (!is_content(c)) break;
          cut_stop = c;
        }
        if (cut_stop <= cut_start) {
          t.clear();
        } else {
          const size_t b = chars[cut_start].first, e = cut_stop < chars.size() ? chars[cut_stop].first : t.size();
          t = t.substr(b, e - b);
        }
      }
    };
  }
  if (type == "Replace") {
    auto re = pattern(r, j, path);
    const std::string content = r.string(r.require(j, path, "content"), join_path(path, "content"));
    return [re, content](std::vector<std::string>& tokens) {
      for (std::string& t : tokens) t = replace_all(*re, t, content);
    };
  }
  if (type == "Sequence") {
    const std::string p = join_path(path, "decoders");
    const json& list = r.array(r.require(j, path, "decoders"), p);
    std::vector<Decoder> parts;
    for (size_t i = 0; i < list.size(); ++i)
      if (auto n = build_decoder(r, r.object(list[i], join_path(p, i)), join_path(p, i))) parts.push_back(n);
    return [parts](std::vector<std::string>& tokens) {
      for (const auto& n : parts) n(tokens);
    };
  }
  unsupported(r, join_path(path, "type"), "decoder", type,
              "ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, Sequence");
}

}  // namespace foldmoe::data::tok
