#include "parallel/distributed_optimizer.h"

#include <numeric>

#include "ops/adamw.h"

namespace foldmoe {

int64_t ShardedAdamW::pad_multiple(int group_size) { return std::lcm(int64_t(group_size), int64_t(128)); }

ShardedAdamW::ShardedAdamW(ParamArena& arena, const OptimConfig& cfg, std::shared_ptr<Communicator> group)
    : arena_(arena), cfg_(cfg), group_(std::move(group)) {
  const int G = group_->size();
  FOLDMOE_CHECK(arena_.total() % pad_multiple(G) == 0, "arena total {} is not padded for group size {}",
                arena_.total(), G);
  size_ = arena_.total() / G;
  begin_ = int64_t(group_->rank()) * size_;
  grad_.assign(size_t(size_), 0.0f);
  m_.assign(size_t(size_), 0.0f);
  v_.assign(size_t(size_), 0.0f);
}

template <typename F>
void ShardedAdamW::for_each_param_range(F&& f) const {
  const int64_t end = begin_ + size_;
  for (int i = 0; i < arena_.size(); ++i) {
    const int64_t lo = std::max(begin_, arena_.offset(i));
    const int64_t hi = std::min(end, arena_.offset(i) + shape_numel(arena_.spec(i).shape));
    if (lo < hi) f(i, lo, hi);
  }
}

void ShardedAdamW::reduce_scatter_grads() { group_->reduce_scatter(arena_.grads(), grad_.data(), size_); }

void ShardedAdamW::reduce_sequence_parallel(Communicator& tp) {
  if (tp.size() == 1) return;
  for_each_param_range([&](int i, int64_t lo, int64_t hi) {
    if (arena_.spec(i).sequence_parallel) tp.all_reduce(grad_.data() + (lo - begin_), hi - lo);
  });
}

void ShardedAdamW::scale_shard_grads(float s) { ops::scale_inplace(grad_.data(), size_, s); }

double ShardedAdamW::shard_square_norm(bool count_sp) const {
  double s = 0;
  for_each_param_range([&](int i, int64_t lo, int64_t hi) {
    if (arena_.spec(i).sequence_parallel && !count_sp) return;
    s += ops::sum_squares(grad_.data() + (lo - begin_), hi - lo);
  });
  return s;
}

void ShardedAdamW::step(double lr, int64_t step) {
  for_each_param_range([&](int i, int64_t lo, int64_t hi) {
    const ParamSpec& s = arena_.spec(i);
    const ops::AdamWHyper h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, s.weight_decay ? cfg_.weight_decay : 0.0, step};
    const int64_t k = lo - begin_;
    ops::adamw_step(arena_.params() + lo, grad_.data() + k, m_.data() + k, v_.data() + k, hi - lo, h);
  });
  // All-gather the updated shards (each member sends its own slice of the arena).
  std::vector<float> mine(arena_.params() + begin_, arena_.params() + begin_ + size_);
  group_->all_gather(mine.data(), arena_.params(), size_);
}

std::vector<float> ShardedAdamW::gather_(const std::vector<float>& shard) const {
  std::vector<float> full(size_t(arena_.total()));
  group_->all_gather(shard.data(), full.data(), size_);
  return full;
}

std::vector<float> ShardedAdamW::full_m() const { return gather_(m_); }
std::vector<float> ShardedAdamW::full_v() const { return gather_(v_); }

void ShardedAdamW::load_full_moments(const std::vector<float>& m, const std::vector<float>& v) {
  FOLDMOE_CHECK(int64_t(m.size()) == arena_.total() && int64_t(v.size()) == arena_.total(), "moment sizes");
  std::copy(m.begin() + begin_, m.begin() + begin_ + size_, m_.begin());
  std::copy(v.begin() + begin_, v.begin() + begin_ + size_, v_.begin());
}

}  // namespace foldmoe
