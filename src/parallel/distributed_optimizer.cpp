#include "parallel/distributed_optimizer.h"

#include <algorithm>
#include <numeric>

#include "ops/adamw.h"

namespace foldmoe {

int64_t ShardedAdamW::pad_multiple(int group_size) { return std::lcm(int64_t(group_size), int64_t(128)); }

ShardedAdamW::ShardedAdamW(ParamArena& arena, const OptimConfig& cfg, std::shared_ptr<Communicator> group,
                           int64_t bucket_size)
    : arena_(arena), cfg_(cfg), group_(std::move(group)) {
  const int G = group_->size();
  const int64_t unit = pad_multiple(G);
  FOLDMOE_CHECK(arena_.total() % unit == 0, "arena total {} is not padded for group size {}", arena_.total(), G);
  const int64_t bucket = (std::max<int64_t>(bucket_size, 1) + unit - 1) / unit * unit;
  for (int64_t start = 0; start < arena_.total(); start += bucket) {
    const int64_t len = std::min(bucket, arena_.total() - start);
    buckets_.push_back({start, len, start + int64_t(group_->rank()) * (len / G), size_});
    size_ += len / G;
  }
  grad_.assign(size_t(size_), 0.0f);
  m_.assign(size_t(size_), 0.0f);
  v_.assign(size_t(size_), 0.0f);
}

template <typename F>
void ShardedAdamW::for_each_param_range(F&& f) const {
  const int G = group_->size();
  for (const Bucket& b : buckets_) {
    const int64_t begin = b.own, end = b.own + b.len / G;
    for (int i = 0; i < arena_.size(); ++i) {
      const int64_t lo = std::max(begin, arena_.offset(i));
      const int64_t hi = std::min(end, arena_.offset(i) + shape_numel(arena_.spec(i).shape));
      if (lo < hi) f(i, lo, hi, b.at + (lo - begin));
    }
  }
}

void ShardedAdamW::reduce_scatter_grads() {
  const int G = group_->size();
  for (const Bucket& b : buckets_) group_->reduce_scatter(arena_.grads() + b.start, grad_.data() + b.at, b.len / G);
}

void ShardedAdamW::reduce_sequence_parallel(Communicator& tp) {  // no-op all-reduces over one TP rank
  for_each_param_range([&](int i, int64_t lo, int64_t hi, int64_t k) {
    if (arena_.spec(i).sequence_parallel) tp.all_reduce(grad_.data() + k, hi - lo);
  });
}

void ShardedAdamW::scale_shard_grads(float s) { ops::scale_inplace(grad_.data(), size_, s); }

double ShardedAdamW::shard_square_norm(bool count_sp) const {
  double s = 0;
  for_each_param_range([&](int i, int64_t lo, int64_t hi, int64_t k) {
    if (arena_.spec(i).sequence_parallel && !count_sp) return;
    if (arena_.spec(i).tied_copy) return;  // counted on the first stage
    s += ops::sum_squares(grad_.data() + k, hi - lo);
  });
  return s;
}

void ShardedAdamW::step(double lr, int64_t step) {
  for_each_param_range([&](int i, int64_t lo, int64_t hi, int64_t k) {
    const ParamSpec& s = arena_.spec(i);
    const ops::AdamWHyper h{lr, cfg_.beta1, cfg_.beta2, cfg_.eps, s.weight_decay ? cfg_.weight_decay : 0.0, step};
    ops::adamw_step(arena_.params() + lo, grad_.data() + k, m_.data() + k, v_.data() + k, hi - lo, h);
  });
  // All-gather the updated slices of every bucket (each member sends its own slice).
  const int G = group_->size();
  std::vector<float> mine;
  for (const Bucket& b : buckets_) {
    mine.assign(arena_.params() + b.own, arena_.params() + b.own + b.len / G);
    group_->all_gather(mine.data(), arena_.params() + b.start, b.len / G);
  }
}

std::vector<float> ShardedAdamW::gather_(const std::vector<float>& shard) const {
  const int G = group_->size();
  std::vector<float> full(size_t(arena_.total()));
  for (const Bucket& b : buckets_) group_->all_gather(shard.data() + b.at, full.data() + b.start, b.len / G);
  return full;
}

std::vector<float> ShardedAdamW::full_m() const { return gather_(m_); }
std::vector<float> ShardedAdamW::full_v() const { return gather_(v_); }

void ShardedAdamW::load_full_moments(const std::vector<float>& m, const std::vector<float>& v) {
  FOLDMOE_CHECK(int64_t(m.size()) == arena_.total() && int64_t(v.size()) == arena_.total(), "moment sizes");
  const int G = group_->size();
  for (const Bucket& b : buckets_) {
    std::copy(m.begin() + b.own, m.begin() + b.own + b.len / G, m_.begin() + b.at);
    std::copy(v.begin() + b.own, v.begin() + b.own + b.len / G, v_.begin() + b.at);
  }
}

}  // namespace foldmoe
