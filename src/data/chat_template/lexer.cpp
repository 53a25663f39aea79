#include "data/chat_template/lexer.h"

#include <cctype>
#include <cstdlib>

#include "core/check.h"
#include "data/tokenizers/utf8.h"

namespace foldmoe::data::chat {

void template_error(const std::string& origin, Pos pos, const std::string& what) {
  user_error(
      "chat template error K9: {}:{}:{}: {}\n  fix: use a named template instead (rl.chat_template = \"chatml\", "
      "\"llama3\" or \"plain\"), or simplify the template to the subset in docs/chat-templates.md",
      origin, pos.line, pos.col, what);
}

namespace {

// Python's str.isspace for the characters templates contain.
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string rstrip_space(std::string_view s) {
  size_t e = s.size();
  while (e > 0 && is_space(s[e - 1])) --e;
  return std::string(s.substr(0, e));
}

// "\r\n" and "\r" become "\n"; one trailing newline is dropped (jinja2 without keep_trailing_newline).
std::string normalise_newlines(std::string_view src) {
  std::string out;
  out.reserve(src.size());
  for (size_t k = 0; k < src.size(); ++k) {
    if (src[k] == '\r') {
      out += '\n';
      if (k + 1 < src.size() && src[k + 1] == '\n') ++k;
    } else {
      out += src[k];
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

class Lexer {
 public:
  Lexer(std::string_view src, const std::string& origin) : src_(src), origin_(origin) {}

  std::vector<Piece> run() {
    std::vector<Piece> out;
    bool line_starting = true;
    while (pos_ < src_.size()) {
      const size_t at = find_tag(pos_);
      std::string text(src_.substr(pos_, at == std::string_view::npos ? std::string_view::npos : at - pos_));
      const Pos text_pos = where(pos_);
      if (at == std::string_view::npos) {
        push_text(out, std::move(text), text_pos);
        break;
      }
      const char kind = src_[at + 1];
      const char mod = at + 2 < src_.size() && (src_[at + 2] == '-' || src_[at + 2] == '+') ? src_[at + 2] : 0;
      if (mod == '-') {
        text = rstrip_space(text);
      } else if (mod != '+' && kind != '{') {
        // lstrip_blocks: a block or comment tag preceded on its line by whitespace only.
        const size_t nl = text.rfind('\n');
        const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if ((l_pos > 0 || line_starting) && l_pos < text.size()) {
          bool blank = true;
          for (size_t k = l_pos; k < text.size(); ++k) blank = blank && is_space(text[k]);
          if (blank) text.resize(l_pos);
        }
      }
      push_text(out, std::move(text), text_pos);
      const size_t body = at + 2 + (mod ? 1 : 0);
      size_t end = 0;  // one past the closing tag, before the whitespace it removes
      char end_mod = 0;
      if (kind == '#') {
        const size_t close = src_.find("#}", body);
        if (close == std::string_view::npos) template_error(origin_, where(at), "the comment is never closed with #}");
        if (close > body && (src_[close - 1] == '-' || src_[close - 1] == '+')) end_mod = src_[close - 1];
        end = close + 2;
      } else {
        Piece p;
        p.kind = kind == '{' ? Piece::Kind::Output : Piece::Kind::Statement;
        p.pos = where(at);
        pos_ = body;
        lex_tokens(p, kind == '{' ? '}' : '%', end, end_mod);
        out.push_back(std::move(p));
      }
      pos_ = end;
      line_starting = false;
      if (end_mod == '-') {
        while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
        line_starting = pos_ > end && src_[pos_ - 1] == '\n';
      } else if (end_mod != '+' && kind != '{' && pos_ < src_.size() && src_[pos_] == '\n') {
        ++pos_;  // trim_blocks
        line_starting = true;
      }
    }
    return out;
  }

 private:
  size_t find_tag(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string_view::npos; k = src_.find('{', k + 1))
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    return std::string_view::npos;
  }

  Pos where(size_t offset) const {
    Pos p;
    for (size_t k = 0; k < offset && k < src_.size(); ++k) {
      if (src_[k] == '\n') {
        ++p.line;
        p.col = 1;
      } else if ((static_cast<unsigned char>(src_[k]) & 0xC0) != 0x80) {
        ++p.col;
      }
    }
    return p;
  }

  static void push_text(std::vector<Piece>& out, std::string text, Pos pos) {
    if (text.empty()) return;
    Piece p;
    p.text = std::move(text);
    p.pos = pos;
    out.push_back(std::move(p));
  }

  // Tokens up to the closing "}}" or "%}" (with an optional '-' or '+' before it).
  void lex_tokens(Piece& p, char closer, size_t& end, char& end_mod) {
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
      if (pos_ >= src_.size())
        template_error(origin_, p.pos, std::string("the tag is never closed with ") + closer + "}");
      const char c = src_[pos_];
      // The closing tag comes first, as in jinja2's lexer ("-%}" ends the tag even after an operand).
      for (const char m : {'-', '+', '\0'}) {
        const size_t k = pos_ + (m ? 1 : 0);
        if ((m == 0 || c == m) && k + 1 < src_.size() && src_[k] == closer && src_[k + 1] == '}' &&
            !(m == '+' && closer == '}')) {
          Token t;
          t.pos = where(pos_);
          p.tokens.push_back(std::move(t));
          end = k + 2;
          end_mod = m;
          return;
        }
      }
      Token t;
      t.pos = where(pos_);
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        const size_t s = pos_;
        while (pos_ < src_.size() && (std::isalnum(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_'))
          ++pos_;
        t.kind = Token::Kind::Name;
        t.text = std::string(src_.substr(s, pos_ - s));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        lex_number(t);
      } else if (c == '\'' || c == '"') {
        lex_string(t);
      } else {
        static const char* const kOps[] = {"//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "<",
                                           ">",  "(",  ")",  "[",  "]",  "{",  "}", ",", ".", ":", "|", "="};
        bool found = false;
        for (const char* op : kOps) {
          const std::string_view o(op);
          if (src_.substr(pos_, o.size()) == o) {
            t.kind = Token::Kind::Op;
            t.text = std::string(o);
            pos_ += o.size();
            found = true;
            break;
          }
        }
        if (!found) {
          const size_t n = std::max<size_t>(1, tok::utf8_char_len(src_, pos_));
          template_error(origin_, t.pos, "unexpected character '" + std::string(src_.substr(pos_, n)) + "' in a tag");
        }
      }
      p.tokens.push_back(std::move(t));
    }
  }

  void lex_number(Token& t) {
    const size_t s = pos_;
    std::string digits;
    bool is_float = false;
    const auto take_digits = [&] {
      while (pos_ < src_.size() && (std::isdigit(static_cast<unsigned char>(src_[pos_])) || src_[pos_] == '_')) {
        if (src_[pos_] != '_') digits += src_[pos_];
        ++pos_;
      }
    };
    take_digits();
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && std::isdigit(static_cast<unsigned char>(src_[pos_ + 1]))) {
      is_float = true;
      digits += src_[pos_++];
      take_digits();
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t k = pos_ + 1;
      if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
      if (k < src_.size() && std::isdigit(static_cast<unsigned char>(src_[k]))) {
        is_float = true;
        digits += std::string(src_.substr(pos_, k - pos_));
        pos_ = k;
        take_digits();
      }
    }
    if (is_float) {
      t.kind = Token::Kind::Float;
      t.f = std::strtod(digits.c_str(), nullptr);
    } else {
      t.kind = Token::Kind::Int;
      errno = 0;
      char* endp = nullptr;
      const long long v = std::strtoll(digits.c_str(), &endp, 10);
      if (errno == ERANGE) template_error(origin_, t.pos, "the integer " + digits + " does not fit in 64 bits");
      t.i = v;
    }
    t.text = std::string(src_.substr(s, pos_ - s));
  }

  // A quoted literal with Python's backslash escapes (jinja2 decodes them with "unicode-escape").
  void lex_string(Token& t) {
    const char q = src_[pos_++];
    t.kind = Token::Kind::String;
    std::string& v = t.text;
    while (true) {
      if (pos_ >= src_.size()) template_error(origin_, t.pos, "the string literal is never closed");
      const char c = src_[pos_++];
      if (c == q) return;
      if (c != '\\') {
        v += c;
        continue;
      }
      if (pos_ >= src_.size()) template_error(origin_, t.pos, "the string literal is never closed");
      const char e = src_[pos_++];
      const auto hex = [&](int n) {
        if (pos_ + size_t(n) > src_.size()) template_error(origin_, t.pos, "a truncated \\x/\\u escape in a string");
        char32_t cp = 0;
        for (int k = 0; k < n; ++k) {
          const char h = src_[pos_++];
          if (!std::isxdigit(static_cast<unsigned char>(h)))
            template_error(origin_, t.pos, "a malformed \\x/\\u escape in a string");
          cp = cp * 16 + char32_t(std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : (std::tolower(h) - 'a' + 10));
        }
        if (cp > 0x10FFFF) template_error(origin_, t.pos, "an escape beyond U+10FFFF in a string");
        tok::append_utf8(v, cp);
      };
      switch (e) {
        case '\n':
          break;
        case '\\':
          v += '\\';
          break;
        case '\'':
          v += '\'';
          break;
        case '"':
          v += '"';
          break;
        case 'a':
          v += '\a';
          break;
        case 'b':
          v += '\b';
          break;
        case 'f':
          v += '\f';
          break;
        case 'n':
          v += '\n';
          break;
        case 'r':
          v += '\r';
          break;
        case 't':
          v += '\t';
          break;
        case 'v':
          v += '\v';
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') {
            char32_t cp = char32_t(e - '0');
            for (int k = 0; k < 2 && pos_ < src_.size() && src_[pos_] >= '0' && src_[pos_] <= '7'; ++k)
              cp = cp * 8 + char32_t(src_[pos_++] - '0');
            tok::append_utf8(v, cp);
          } else {
            v += '\\';
            v += e;
          }
      }
    }
  }

  std::string_view src_;
  const std::string& origin_;
  size_t pos_ = 0;
};

}  // namespace

std::vector<Piece> lex_template(std::string_view source, const std::string& origin) {
  const std::string src = normalise_newlines(source);
  return Lexer(src, origin).run();
}

}  // namespace foldmoe::data::chat
