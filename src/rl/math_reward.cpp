#include "rl/math_reward.h"

#include <array>
#include <numeric>
#include <string>

namespace foldmoe::rl {
namespace {

// ---- UTF-8 <-> code points (invalid bytes decode as themselves, U+0080..U+00FF style) --------

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    bool ok = len > 0 && i + size_t(len) <= s.size();
    char32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
    for (int k = 1; ok && k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + size_t(k)]);
      if ((cc >> 6) != 0x2) ok = false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (!ok) {  // keep malformed bytes one by one
      out.push_back(c);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out.push_back(char(cp));
    } else if (cp < 0x800) {
      out.push_back(char(0xC0 | (cp >> 6)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(char(0xE0 | (cp >> 12)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (cp >> 18)));
      out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  return out;
}

// Python's str.isspace() / regex \s for str patterns.
bool is_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// (?i) letter match for the ASCII pattern letter `p` (lower case); Unicode case folding adds
// U+017F (long s) for 's'.
bool ci_equal(char32_t c, char p) {
  if (c < 0x80) return char(c | 0x20) == p && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'));
  return p == 's' && c == 0x017F;
}

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  if (from.empty()) return;
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) {
    out.append(s, pos, hit - pos);
    out.append(to);
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Every `<open>X}` → X, X up to the first following '}', non-overlapping, left to right.
void unwrap_all(std::string& s, std::string_view open) {
  std::string out;
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(open, pos);
    if (hit == std::string::npos) break;
    const size_t close = s.find('}', hit + open.size());
    if (close == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out.append(s, hit + open.size(), close - hit - open.size());
    pos = close + 1;
  }
  out.append(s, pos, std::string::npos);
  s = std::move(out);
}

// Length in bytes of the UTF-8 character starting at s[i] (1 for malformed bytes).
size_t char_len(std::string_view s, size_t i) {
  const auto c = static_cast<unsigned char>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  if (i + len > s.size()) return 1;
  for (size_t k = 1; k < len; ++k)
    if ((static_cast<unsigned char>(s[i + k]) >> 6) != 0x2) return 1;
  return len;
}

// N6: `<word>` a b → `<word>{a}{b}` (two_args) or `<word>` a → `<word>{a}`, a != '{'.
void expand_shorthand(std::string& s, std::string_view word, bool two_args) {
  std::string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s.compare(i, word.size(), word) == 0 && i + word.size() < s.size() && s[i + word.size()] != '{') {
      const size_t a = i + word.size();
      const size_t la = char_len(s, a);
      if (!two_args) {
        out.append(word).append("{").append(s, a, la).append("}");
        i = a + la;
        continue;
      }
      const size_t b = a + la;
      if (b < s.size()) {
        const size_t lb = char_len(s, b);
        out.append(word).append("{").append(s, a, la).append("}{").append(s, b, lb).append("}");
        i = b + lb;
        continue;
      }
    }
    out.push_back(s[i]);
    ++i;
  }
  s = std::move(out);
}

constexpr std::array<std::pair<std::string_view, std::string_view>, 10> kSubstitutions{{
    {"an ", ""},
    {"a ", ""},
    {".$", "$"},
    {"\\$", ""},
    {"\\ ", ""},
    {" ", ""},
    {"mbox", "text"},
    {",\\text{and}", ","},
    {"\\text{and}", ","},
    {"\\text{m}", "\\text{}"},
}};

constexpr std::array<std::string_view, 41> kRemovedExpressions{
    "square",  "ways",    "integers", "dollars",   "mph",        "inches", "hours",  "km",
    "units",   "\\ldots", "sue",      "points",    "feet",       "minutes", "digits", "cents",
    "degrees", "cm",      "gm",       "pounds",    "meters",     "meals",  "edges",  "students",
    "childrentickets", "multiples", "\\text{s}", "\\text{.}", "\\text{\ns}", "\\text{}^2", "\\text{}^3",
    "\\text{\n}", "\\text{}", "\\mathrm{th}", "^\\circ", "^{\\circ}", "\\;", ",\\!", "{,}", "\"", "\\dots",
};

// ---- rationals ------------------------------------------------------------------------------

using i128 = __int128;

i128 gcd128(i128 a, i128 b) {
  if (a < 0) a = -a;
  if (b < 0) b = -b;
  while (b != 0) {
    const i128 t = a % b;
    a = b;
    b = t;
  }
  return a;
}

// [sign] digits [. digits] with at least one digit, <= 18 digits.
std::optional<Rational> parse_decimal(std::string_view s) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  i128 num = 0, den = 1;
  int digits = 0;
  bool dot = false;
  for (char c : s) {
    if (c == '.') {
      if (dot) return std::nullopt;
      dot = true;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 18) return std::nullopt;
      num = num * 10 + (c - '0');
      if (dot) den *= 10;
    } else {
      return std::nullopt;
    }
  }
  if (digits == 0) return std::nullopt;
  return Rational{neg ? -num : num, den};
}

std::optional<Rational> divide(const Rational& a, const Rational& b) {
  if (b.num == 0) return std::nullopt;
  i128 num = a.num * b.den, den = a.den * b.num;
  if (den < 0) {
    num = -num;
    den = -den;
  }
  const i128 g = gcd128(num, den);
  if (g > 1) {
    num /= g;
    den /= g;
  }
  return Rational{num, den};
}

}  // namespace

std::string dapo_math_prompt(std::string_view problem) {
  std::string s =
      "Solve the following math problem step by step. The last line of your response should be of the form "
      "Answer: $Answer (without quotes) where $Answer is the answer to the problem.\n\n";
  s.append(problem);
  s.append("\n\nRemember to put your answer on its own line after \"Answer:\".");
  return s;
}

std::string extract_answer(std::string_view response, std::string_view eos) {
  if (!eos.empty() && response.size() >= eos.size() && response.substr(response.size() - eos.size()) == eos)
    response.remove_suffix(eos.size());
  std::u32string s = decode_utf8(response);
  if (s.size() > kAnswerWindowChars) s.erase(0, s.size() - kAnswerWindowChars);
  const size_t n = s.size();
  constexpr std::string_view kWord = "answer";
  bool found = false;
  size_t cap_begin = 0, cap_end = 0;
  size_t i = 0;
  while (i < n) {
    // Try a match at i: Answer \s* : \s* ([^\n]+)
    bool ok = i + kWord.size() <= n;
    for (size_t k = 0; ok && k < kWord.size(); ++k) ok = ci_equal(s[i + k], kWord[k]);
    size_t j = i + kWord.size();
    if (ok) {
      while (j < n && is_space(s[j])) ++j;
      ok = j < n && s[j] == U':';
    }
    if (ok) {
      const size_t after_colon = j + 1;
      size_t k_end = after_colon;
      while (k_end < n && is_space(s[k_end])) ++k_end;
      // Greedy \s*, then backtrack until [^\n]+ can start.
      ok = false;
      for (size_t p = k_end + 1; p-- > after_colon;) {
        if (p < n && s[p] != U'\n') {
          size_t e = p;
          while (e < n && s[e] != U'\n') ++e;
          cap_begin = p;
          cap_end = e;
          ok = true;
          break;
        }
      }
    }
    if (ok) {
      found = true;
      i = cap_end;  // non-overlapping: continue after the match
    } else {
      ++i;
    }
  }
  if (!found) return std::string(kInvalidAnswer);
  return encode_utf8(std::u32string_view(s).substr(cap_begin, cap_end - cap_begin));
}

std::string normalize_final_answer(std::string_view answer) {
  // N1
  std::string s(answer);
  if (const size_t eq = s.rfind('='); eq != std::string::npos) s.erase(0, eq + 1);
  // N2, N3
  for (const auto& [from, to] : kSubstitutions) replace_all(s, from, to);
  for (std::string_view expr : kRemovedExpressions) replace_all(s, expr, "");
  // N4
  if (const size_t d1 = s.find('$'); d1 != std::string::npos) {
    if (const size_t d2 = s.find('$', d1 + 1); d2 != std::string::npos)
    {
      std::string t(1, '$');
      t.append(s, d1 + 1, d2 - d1 - 1);
      t.push_back('$');
      s = std::move(t);
    }
  }
  // N5
  unwrap_all(s, "\\text{");
  unwrap_all(s, "\\textbf{");
  unwrap_all(s, "\\overline{");
  if (const size_t b = s.find("\\boxed{"); b != std::string::npos) {
    const size_t open_end = b + std::string_view("\\boxed{").size();
    const size_t close = s.rfind('}');
    if (close != std::string::npos && close >= open_end) {
      std::string t(s, 0, b);
      t.append(s, open_end, close - open_end);
      t.append(s, close + 1, std::string::npos);
      s = std::move(t);
    }
  }
  // N6
  expand_shorthand(s, "frac", true);
  expand_shorthand(s, "sqrt", false);
  // N7
  replace_all(s, "$", "");
  // N8
  {
    std::string no_commas = s;
    replace_all(no_commas, ",", "");
    bool digits = !no_commas.empty();
    for (char c : no_commas) digits = digits && c >= '0' && c <= '9';
    if (digits) s = std::move(no_commas);
  }
  // N9
  std::u32string u = decode_utf8(s);
  size_t b = 0, e = u.size();
  while (b < e && is_space(u[b])) ++b;
  while (e > b && is_space(u[e - 1])) --e;
  return encode_utf8(std::u32string_view(u).substr(b, e - b));
}

std::optional<Rational> parse_rational(std::string_view s) {
  bool neg = false;
  std::string_view body = s;
  for (std::string_view cmd : {"\\frac{", "\\dfrac{", "\\tfrac{", "+\\frac{", "+\\dfrac{", "+\\tfrac{", "-\\frac{",
                               "-\\dfrac{", "-\\tfrac{"}) {
    if (body.substr(0, cmd.size()) != cmd) continue;
    neg = cmd[0] == '-';
    std::string_view rest = body.substr(cmd.size());
    const size_t c1 = rest.find('}');
    if (c1 == std::string_view::npos || c1 + 1 >= rest.size() || rest[c1 + 1] != '{' || rest.back() != '}')
      return std::nullopt;
    const auto a = parse_decimal(rest.substr(0, c1));
    const auto bb = parse_decimal(rest.substr(c1 + 2, rest.size() - c1 - 3));
    if (!a || !bb) return std::nullopt;
    auto q = divide(*a, *bb);
    if (q && neg) q->num = -q->num;
    return q;
  }
  if (const size_t slash = body.find('/'); slash != std::string_view::npos) {
    const auto a = parse_decimal(body.substr(0, slash));
    const auto bb = parse_decimal(body.substr(slash + 1));
    if (!a || !bb) return std::nullopt;
    return divide(*a, *bb);
  }
  const auto a = parse_decimal(body);
  if (!a) return std::nullopt;
  return divide(*a, Rational{1, 1});
}

MathScore score_math_response(std::string_view response, std::string_view ground_truth,
                              EquivalenceFallback fallback, std::string_view eos) {
  MathScore m;
  m.prediction = normalize_final_answer(extract_answer(response, eos));
  m.ground_truth = normalize_final_answer(ground_truth);
  bool correct = m.prediction == m.ground_truth;
  if (!correct && fallback == EquivalenceFallback::Numeric && m.prediction != kInvalidAnswer) {
    const auto p = parse_rational(m.prediction), g = parse_rational(m.ground_truth);
    correct = p && g && *p == *g;
  }
  m.acc = correct;
  m.score = correct ? 1.0f : -1.0f;
  return m;
}

}  // namespace foldmoe::rl
