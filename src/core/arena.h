// Flat parameter/gradient arenas (docs/design.md §3 rule 7). Every parameter is a contiguous range of
// one big buffer, and its gradient the same range of a twin buffer, so gradient reduction,
// optimizer sharding and checkpointing are loops over ranges. foldmoe keeps two arenas: dense
// parameters and routed-expert parameters (they are reduced over different groups).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace foldmoe {

enum class ArenaKind { Dense, Expert };

enum class InitKind { Normal, Ones, Zeros };

struct ParamSpec {
  std::string name;         // global, layout-independent (e.g. "layers.0.moe.experts.3.fc1")
  Shape shape;              // local shape on this rank
  Shape global_shape;       // logical shape (equal to shape when unsharded)
  InitKind init = InitKind::Normal;
  double init_std = 0.02;
  bool weight_decay = true;        // matrices decay; norm weights and biases do not
  bool sequence_parallel = false;  // TP-replicated, grad summed over tp (docs/dense-parallel.md §2.4)
  // The last pipeline stage's copy of the tied embedding (docs/dense-parallel.md §3.4): its gradient
  // is summed with the first stage's over the embedding group; gradient norms and the logical
  // (checkpoint) view count only the first stage's copy.
  bool tied_copy = false;
  // Maps a local element index to its index in the logical tensor (sharded parameters).
  // Empty = identity; -1 marks padding (zero, not part of the logical tensor). Initialisation
  // draws at the global index, so layouts agree.
  std::function<int64_t(int64_t)> global_index;
};

class ParamArena;

// A handle that stays valid after the arena allocates.
struct Param {
  ParamArena* arena = nullptr;
  int index = -1;
  float* w() const;
  float* g() const;
  const ParamSpec& spec() const;
  int64_t numel() const;
  bool valid() const { return arena != nullptr; }
};

class ParamArena {
 public:
  static constexpr int64_t kAlign = 64;  // each parameter starts at a multiple of 64 elements

  explicit ParamArena(ArenaKind kind) : kind_(kind) {}
  ParamArena(const ParamArena&) = delete;
  ParamArena& operator=(const ParamArena&) = delete;

  ArenaKind kind() const { return kind_; }
  Param add(ParamSpec spec);
  // Allocates parameters and gradients (zeroed), the total padded to a multiple of
  // `pad_multiple` elements (the distributed optimizer shards whole arenas, docs/dense-parallel.md §9.1).
  // No parameters may be added afterwards.
  void allocate(int64_t pad_multiple = 1);
  // Fills every parameter from the counter-based RNG keyed by (seed, name, global index).
  void initialize(uint64_t seed);
  void zero_grad();
  // Frees the gradients of an arena that only holds values (e.g. a checkpoint snapshot).
  void free_grads() { std::vector<float>().swap(grads_); }

  int size() const { return int(specs_.size()); }
  const ParamSpec& spec(int i) const { return specs_[size_t(i)]; }
  int64_t offset(int i) const { return offsets_[size_t(i)]; }
  int64_t total() const { return total_; }  // elements incl. alignment padding
  float* params() { return params_.data(); }
  float* grads() { return grads_.data(); }
  const float* params() const { return params_.data(); }
  const float* grads() const { return grads_.data(); }
  bool allocated() const { return allocated_; }
  // Index of the parameter with this name, or -1.
  int find(const std::string& name) const;

 private:
  ArenaKind kind_;
  std::vector<ParamSpec> specs_;
  std::vector<int64_t> offsets_;
  int64_t total_ = 0;
  bool allocated_ = false;
  std::vector<float> params_, grads_;
};

// Fills `out` (n elements) with the initial values of parameter `spec` under `seed`.
void init_param_values(const ParamSpec& spec, uint64_t seed, float* out, int64_t n);

}  // namespace foldmoe
