#include "data/text_tokenizer.h"

#include <filesystem>

#include "core/check.h"
#include "data/tokenizer.h"
#include "data/tokenizers/hf_tokenizer.h"
#include "data/tokenizers/sentencepiece_tokenizer.h"

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

constexpr const char* kAccepted =
    "\"char\" (the built-in character tokenizer), a SentencePiece `.model` file, a HF `tokenizer.json` "
    "or a directory holding one";

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& spec) {
  namespace fs = std::filesystem;
  if (spec == "char") return std::make_unique<BuiltinCharTokenizer>();
  std::error_code ec;
  const fs::path path(spec);
  if (!fs::exists(path, ec))
    user_error("tokenizer error K3: tokenizer '{}' is neither a built-in name nor an existing file\n  fix: pass {}",
               spec, kAccepted);
  if (path.extension() == ".model") return load_sentencepiece_tokenizer(spec);
  // A directory (a HF model folder) or a .json file; tokenizer_config.json beside it names bos/eos/pad.
  const fs::path json = fs::is_directory(path, ec) ? path / "tokenizer.json" : path;
  if (json.extension() == ".json") {
    if (!fs::is_regular_file(json, ec))
      user_error("tokenizer error K3: tokenizer directory '{}' holds no tokenizer.json\n  fix: pass {}", spec,
                 kAccepted);
    const fs::path config = json.parent_path() / "tokenizer_config.json";
    return load_hf_tokenizer(json.string(), fs::is_regular_file(config, ec) ? config.string() : "");
  }
  user_error("tokenizer error K3: tokenizer '{}' is not a format foldmoe reads\n  fix: pass {}", spec, kAccepted);
}

}  // namespace foldmoe::data
