#include "data/tokenizers/sentencepiece_tokenizer.h"

#include <fmt/format.h>
#include <sentencepiece_processor.h>

#include "core/check.h"

namespace foldmoe::data {
namespace {

// The library reports an absent special piece as id -1.
std::optional<int32_t> present(int id) {
  return id >= 0 ? std::optional<int32_t>(id) : std::nullopt;
}

class SentencePieceTokenizer final : public Tokenizer {
 public:
  explicit SentencePieceTokenizer(const std::string& path) : path_(path) {
    const auto status = sp_.Load(path);
    if (!status.ok())
      user_error(
          "tokenizer error K1: '{}' is not a readable SentencePiece model ({})\n  fix: pass a `.model` file "
          "written by spm_train / SentencePiece, a tokenizer.json, or \"char\"",
          path, status.ToString());
  }

  int32_t vocab_size() const override { return sp_.GetPieceSize(); }

  std::vector<int32_t> encode(std::string_view text) const override {
    std::vector<int> ids;
    const auto status = sp_.Encode(text, &ids);
    if (!status.ok()) user_error("tokenizer error K1: {} cannot encode the text: {}", path_, status.ToString());
    return {ids.begin(), ids.end()};
  }

  std::string decode(std::span<const int32_t> ids) const override {
    const int32_t n = vocab_size();
    for (size_t i = 0; i < ids.size(); ++i)
      if (ids[i] < 0 || ids[i] >= n)
        user_error("tokenizer error K2: id {} at position {} is outside the vocabulary of {} (0 .. {})", ids[i], i,
                   path_, n - 1);
    std::string text;
    const auto status = sp_.Decode(std::vector<int>(ids.begin(), ids.end()), &text);
    if (!status.ok()) user_error("tokenizer error K1: {} cannot decode the ids: {}", path_, status.ToString());
    return text;
  }

  std::string token_name(int32_t id) const override {
    if (id < 0 || id >= vocab_size()) return fmt::format("<id {} out of range>", id);
    return sp_.IdToPiece(id);
  }

  std::optional<int32_t> bos_id() const override { return present(sp_.bos_id()); }
  std::optional<int32_t> eos_id() const override { return present(sp_.eos_id()); }
  std::optional<int32_t> pad_id() const override { return present(sp_.pad_id()); }
  std::optional<int32_t> unk_id() const override { return present(sp_.unk_id()); }

  std::string describe() const override { return fmt::format("sentencepiece {} ({} ids)", path_, vocab_size()); }

 private:
  std::string path_;
  sentencepiece::SentencePieceProcessor sp_;
};

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece_tokenizer(const std::string& path) {
  return std::make_unique<SentencePieceTokenizer>(path);
}

}  // namespace foldmoe::data
