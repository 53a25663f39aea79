#include "data/tokenizers/bpe.h"

#include <fmt/format.h>

#include <queue>
#include <stdexcept>

#include "data/tokenizers/utf8.h"

namespace foldmoe::data::tok {
namespace {

constexpr size_t kCacheCapacity = 1 << 18;  // words
constexpr size_t kMaxCachedWordBytes = 256;

}  // namespace

Bpe::Bpe(Vocab vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions options)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const size_t prefix_len = options_.continuing_subword_prefix ? options_.continuing_subword_prefix->size() : 0;
  merges_.reserve(merges.size() * 2);
  for (size_t i = 0; i < merges.size(); ++i) {
    const auto& [a, b] = merges[i];
    const auto ia = vocab_.find(a), ib = vocab_.find(b);
    if (ia == vocab_.end() || ib == vocab_.end())
      throw std::invalid_argument(
          fmt::format("merge {} names \"{}\", which is not in the vocabulary", i, ia == vocab_.end() ? a : b));
    if (b.size() < prefix_len)
      throw std::invalid_argument(fmt::format("merge {}: \"{}\" is shorter than the subword prefix", i, b));
    const std::string joined = a + b.substr(prefix_len);
    const auto ij = vocab_.find(joined);
    if (ij == vocab_.end())
      throw std::invalid_argument(fmt::format("merge {} makes \"{}\", which is not in the vocabulary", i, joined));
    merges_[key(ia->second, ib->second)] = Merge{uint32_t(i), ij->second};  // a repeated pair: the later rank wins
  }
  if (options_.unk_token) unk_id_ = id_of(*options_.unk_token);
  for (int b = 0; b < 256; ++b) {
    const auto id = id_of(fmt::format("<0x{:02X}>", b));
    byte_ids_[b] = id ? *id : -1;
  }
}

std::optional<int32_t> Bpe::id_of(std::string_view token) const {
  const auto it = vocab_.find(token);
  return it == vocab_.end() ? std::nullopt : std::optional<int32_t>(it->second);
}

void Bpe::tokenize(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (options_.ignore_merges)
    if (const auto id = id_of(word)) {
      out.push_back(*id);
      return;
    }
  const bool cacheable = word.size() <= kMaxCachedWordBytes;
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (const auto it = cache_.find(word); it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t mark = out.size();
  merge_word(word, out);
  if (cacheable) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() < kCacheCapacity)
      cache_.emplace(std::string(word), std::vector<int32_t>(out.begin() + mark, out.end()));
  }
}

void Bpe::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto add = [&](int32_t id) {
    symbols.push_back({id, int32_t(symbols.size()) - 1, int32_t(symbols.size()) + 1, true});
  };

  // Initial symbols: one per character (HF's merge_word), a pending unknown flushed before the next
  // known character.
  int32_t pending_unk = -1;  // an unknown id waiting to be added (-1: none)
  std::string piece;
  for (size_t i = 0; i < word.size();) {
    const size_t b = i;
    i += utf8_char_len(word, i);
    const std::string_view ch = word.substr(b, i - b);
    piece.clear();
    if (b > 0 && options_.continuing_subword_prefix) piece += *options_.continuing_subword_prefix;
    piece += ch;
    if (i == word.size() && options_.end_of_word_suffix) piece += *options_.end_of_word_suffix;
    if (const auto it = vocab_.find(piece); it != vocab_.end()) {
      if (pending_unk >= 0) add(pending_unk), pending_unk = -1;
      add(it->second);
      continue;
    }
    if (options_.byte_fallback) {
      bool all = true;
      for (unsigned char c : piece) all = all && byte_ids_[c] >= 0;
      if (all) {
        for (unsigned char c : piece) add(byte_ids_[c]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !options_.fuse_unk) add(pending_unk);
      pending_unk = *unk_id_;
    }
    // Without an unknown token HF drops the character.
  }
  if (pending_unk >= 0) add(pending_unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  struct Candidate {
    uint32_t rank;
    int32_t pos;
    int32_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> queue;
  const auto consider = [&](int32_t pos) {
    const int32_t next = symbols[pos].next;
    if (next < 0) return;
    const auto it = merges_.find(key(symbols[pos].id, symbols[next].id));
    if (it != merges_.end()) queue.push({it->second.rank, pos, it->second.new_id});
  };
  for (int32_t p = 0; p + 1 < int32_t(symbols.size()); ++p) consider(p);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (!left.alive || left.next < 0) continue;
    const Symbol& right = symbols[left.next];
    const auto it = merges_.find(key(left.id, right.id));
    if (it == merges_.end() || it->second.new_id != top.new_id) continue;  // a stale candidate
    const int32_t right_pos = left.next;
    left.id = top.new_id;
    left.next = right.next;
    symbols[right_pos].alive = false;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  for (int32_t p = 0; p >= 0; p = symbols[p].next) out.push_back(symbols[p].id);
}

}  // namespace foldmoe::data::tok
