#include "data/text_tokenizer.h"

#include "core/check.h"
#include "data/tokenizer.h"

namespace foldmoe::data {
namespace {

class BuiltinCharTokenizer final : public Tokenizer {
 public:
  int32_t vocab_size() const override { return CharTokenizer::vocab_size(); }
  std::vector<int32_t> encode(std::string_view text) const override { return CharTokenizer::encode(text); }
  std::string decode(std::span<const int32_t> ids) const override { return CharTokenizer::decode(ids); }
  std::string token_name(int32_t id) const override { return CharTokenizer::token_name(id); }
  std::optional<int32_t> bos_id() const override { return CharTokenizer::kBos; }
  std::optional<int32_t> eos_id() const override { return CharTokenizer::kEos; }
  std::optional<int32_t> pad_id() const override { return CharTokenizer::kPad; }
  std::string describe() const override { return "char (98 ids)"; }
};

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  if (spec == "char") return std::make_unique<BuiltinCharTokenizer>();
  user_error("tokenizer '{}' is not known: the built-in one is \"char\"\n  fix: set the tokenizer to \"char\"", spec);
}

}  // namespace foldmoe::data
