// The BPE model of a tokenizer.json: a vocabulary, ranked merges, and HF's merge order (always the
// lowest-ranked pair present, leftmost first), with byte fallback (`<0xAB>` tokens), an unknown
// token (fused or not), a continuing-subword prefix / end-of-word suffix and `ignore_merges`.
//
// Speed: merges live in a hash map keyed by the id pair; a word is merged with a linked list of
// symbols and a min-heap of candidate merges; finished words are cached (word -> ids).
#pragma once

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace foldmoe::data::tok {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using Vocab = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct BpeOptions {
  std::optional<std::string> unk_token, continuing_subword_prefix, end_of_word_suffix;
  bool fuse_unk = false, byte_fallback = false, ignore_merges = false;
};

class Bpe {
 public:
  // `merges` are (left, right) token pairs in rank order. Throws std::invalid_argument naming the
  // merge index when a merge names a token outside the vocabulary.
  Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options);

  // Appends the ids of one pre-tokenized word.
  void tokenize(std::string_view word, std::vector<int32_t>& out) const;

  const Vocab& vocab() const { return vocab_; }
  std::optional<int32_t> id_of(std::string_view token) const;

 private:
  struct Merge {
    uint32_t rank;
    int32_t new_id;
  };
  static uint64_t key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;

  Vocab vocab_;
  std::unordered_map<uint64_t, Merge> merges_;
  BpeOptions options_;
  std::optional<int32_t> unk_id_;
  int32_t byte_ids_[256];  // id of "<0xAB>" per byte, -1 when absent

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>, StringHash, std::equal_to<>> cache_;
};

}  // namespace foldmoe::data::tok
