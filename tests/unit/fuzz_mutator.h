// Seeded mutations of a valid input for the fuzz tests (tests/unit/fuzz_*_test.cpp): byte flips,
// truncation, inserted bytes, huge or non-finite numbers, values of the wrong type, deep nesting,
// dropped and repeated lines. std::mt19937_64 is specified by the standard, so a seed gives the
// same case on every platform: a failure names its seed and case and reproduces.
#pragma once

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace foldmoe::fuzz {

enum class Syntax { Toml, Json, Flag };

class Mutator {
 public:
  Mutator(uint64_t seed, Syntax syntax) : rng_(seed), syntax_(syntax) {}

  // 1 to 3 mutations of `s`.
  std::string mutate(std::string s) {
    const int n = 1 + int(below(3));
    for (int i = 0; i < n; ++i) s = once(std::move(s));
    return s;
  }

  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // A literal that is likely to be wrong where a value is expected.
  std::string bad_value() {
    static const std::vector<std::string> numbers = {"99999999999999999999999",
                                                     "-9223372036854775809",
                                                     "9223372036854775807",
                                                     "18446744073709551616",
                                                     "2147483648",
                                                     "-2147483649",
                                                     "4294967296",
                                                     "1e999",
                                                     "-1e999",
                                                     "1e308",
                                                     "1e-400",
                                                     "nan",
                                                     "inf",
                                                     "-inf",
                                                     "0",
                                                     "-1",
                                                     "100000000",
                                                     "0x7fffffff",
                                                     "1_000_000_000_000",
                                                     "-0"};
    static const std::vector<std::string> toml_types = {"\"text\"", "true", "[1, 2]",     "{ a = 1 }",  "1.5",
                                                        "[]",       "\"\"", "1979-05-27", "[[1], [2]]", "'lit'"};
    static const std::vector<std::string> json_types = {"\"text\"", "true", "[1,2]", "{\"a\":1}", "1.5",
                                                        "null",     "[]",   "{}",    "\"\"",      "-1"};
    if (below(2) == 0) return numbers[below(numbers.size())];
    const auto& types = syntax_ == Syntax::Json ? json_types : toml_types;
    return types[below(types.size())];
  }

  std::string nesting() {
    static const int depths[] = {8, 64, 300, 2000, 5000};
    const int d = depths[below(5)];
    std::string open, close;
    for (int i = 0; i < d; ++i) {
      const bool object = syntax_ == Syntax::Json && below(2) == 0;
      open += object ? "{\"a\":" : "[";
      close += object ? '}' : ']';
    }
    std::reverse(close.begin(), close.end());  // closers in the opposite order of the openers
    return open + "1" + close;
  }

 private:
  size_t pos(const std::string& s) { return size_t(below(s.size() + 1)); }

  // The start and end of a value: after the first '=' (or ':') at or after a random position.
  bool value_span(const std::string& s, size_t* b, size_t* e) {
    const char sep = syntax_ == Syntax::Json ? ':' : '=';
    const size_t at = s.find(sep, pos(s));
    if (at == std::string::npos) return false;
    *b = at + 1;
    while (*b < s.size() && s[*b] == ' ') ++*b;
    *e = *b;
    const std::string stop = syntax_ == Syntax::Json ? ",}]\n" : "\n#";
    while (*e < s.size() && stop.find(s[*e]) == std::string::npos) ++*e;
    return true;
  }

  std::string once(std::string s) {
    switch (below(9)) {
      case 0:  // flip one bit of one byte
        if (!s.empty()) s[below(s.size())] ^= char(1 << below(8));
        return s;
      case 1:  // truncate
        s.resize(pos(s));
        return s;
      case 2: {  // insert bytes, control and syntax characters included
        static const char pool[] = {'\0', '\xff', '\n', '"', '[', ']', '{', '}', '=', ':', ',', '\\', '.', '#', 'e'};
        const size_t at = pos(s);
        std::string ins;
        for (uint64_t i = 0, n = 1 + below(6); i < n; ++i) ins += pool[below(sizeof(pool))];
        return s.insert(at, ins);
      }
      case 3:  // a huge or odd number inserted somewhere
        return s.insert(pos(s), bad_value());
      case 4:    // a value replaced by one of another type or size
      case 5: {  // (twice as likely: it reaches the semantic checks)
        size_t b = 0, e = 0;
        if (!value_span(s, &b, &e)) return s.insert(pos(s), bad_value());
        return s.replace(b, e - b, bad_value());
      }
      case 6: {  // deep nesting in a value
        size_t b = 0, e = 0;
        if (!value_span(s, &b, &e)) return s.insert(pos(s), nesting());
        return s.replace(b, e - b, nesting());
      }
      case 7: {  // drop a line
        const size_t b = s.rfind('\n', pos(s));
        const size_t start = b == std::string::npos ? 0 : b + 1;
        const size_t end = s.find('\n', start);
        return s.erase(start, end == std::string::npos ? std::string::npos : end - start + 1);
      }
      default: {  // repeat a line (a duplicate key or table)
        const size_t b = s.rfind('\n', pos(s));
        const size_t start = b == std::string::npos ? 0 : b + 1;
        const size_t end = s.find('\n', start);
        const std::string line = s.substr(start, end == std::string::npos ? std::string::npos : end - start + 1);
        return s.insert(pos(s), line + "\n");
      }
    }
  }

  std::mt19937_64 rng_;
  Syntax syntax_;
};

}  // namespace foldmoe::fuzz
