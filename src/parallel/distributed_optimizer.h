// ZeRO-1 distributed optimizer over one flat arena (docs/dense-parallel.md §9): gradients are reduce-scattered
// over the arena's group, each member keeps AdamW state for its contiguous shard only, updates
// that shard and all-gathers the parameters. Dense and expert arenas get one instance each
// (groups dp_cp and edp), chained under one grad norm and clip coefficient.
#pragma once

#include <memory>
#include <vector>

#include "comm/process_groups.h"
#include "core/arena.h"
#include "config/config.h"

namespace foldmoe {

class ShardedAdamW {
 public:
  // The arena must have been allocated with a total that is a multiple of lcm(G, 128). It is cut
  // into buckets of bucket_size elements rounded up to lcm(G, 128) (the last one shorter, still a
  // multiple); member i owns the i-th of G equal slices of every bucket (docs/dense-parallel.md §9.2).
  ShardedAdamW(ParamArena& arena, const OptimConfig& cfg, std::shared_ptr<Communicator> group,
               int64_t bucket_size = 40000000);

  static int64_t pad_multiple(int group_size);

  // Reduce-scatters the (pre-scaled) full local gradients: afterwards shard_grads() holds the
  // group-summed gradient of this member's shard.
  void reduce_scatter_grads();
  // Sums SP-flagged gradients of the shard over tp (TP peers own identical ranges).
  void reduce_sequence_parallel(Communicator& tp);
  void scale_shard_grads(float s);
  // Σ g² over the owned shard, SP-flagged elements counted only when count_sp is true.
  double shard_square_norm(bool count_sp) const;
  // AdamW on the owned shard, then all-gather of the parameters into the arena.
  void step(double lr, int64_t step);

  // Arena-shaped (full) moments, all-gathered from the shards (for checkpoints).
  std::vector<float> full_m() const;
  std::vector<float> full_v() const;
  // Loads arena-shaped moments (a checkpoint) into the shard.
  void load_full_moments(const std::vector<float>& m, const std::vector<float>& v);

  // Elements owned here (Σ over buckets of the owned slice).
  int64_t shard_size() const { return size_; }
  int num_buckets() const { return int(buckets_.size()); }

 private:
  struct Bucket {
    int64_t start, len;  // arena range
    int64_t own;         // arena offset of this member's slice (len / G elements)
    int64_t at;          // offset of that slice in the shard buffers
  };
  template <typename F>
  void for_each_param_range(F&& f) const;  // f(param index, arena lo, arena hi, shard offset of lo)
  std::vector<float> gather_(const std::vector<float>& shard) const;

  ParamArena& arena_;
  OptimConfig cfg_;
  std::shared_ptr<Communicator> group_;
  std::vector<Bucket> buckets_;
  int64_t size_ = 0;
  std::vector<float> grad_, m_, v_;
};

}  // namespace foldmoe
