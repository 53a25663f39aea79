// The collective-communication interface every component talks to (DESIGN.md §3 rules 2 and 8).
// Backends: single-rank (here), MPI and NCCL (later issues). No backend types leak out of it.
// A group of size 1 makes every collective a copy or a no-op, so single-rank code is the same
// code as multi-rank code.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace foldmoe {

enum class ReduceOp { Sum, Max };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;  // rank in this group
  virtual int size() const = 0;
  virtual std::string name() const = 0;

  // In place over `n` floats.
  virtual void all_reduce(float* data, int64_t n, ReduceOp op = ReduceOp::Sum) = 0;
  virtual void all_reduce(double* data, int64_t n, ReduceOp op = ReduceOp::Sum) = 0;
  // send: n floats; recv: n * size() floats, member i's block at i * n.
  virtual void all_gather(const float* send, float* recv, int64_t n) = 0;
  // Uneven: member i contributes counts[i] floats; recv holds them concatenated in member order.
  virtual void all_gather_v(const float* send, float* recv, std::span<const int64_t> counts) = 0;
  // send: n * size() floats; recv: n floats = the sum of every member's block rank().
  virtual void reduce_scatter(const float* send, float* recv, int64_t n) = 0;
  virtual void reduce_scatter_v(const float* send, float* recv, std::span<const int64_t> counts) = 0;
  // send_counts[i] floats go to member i, recv_counts[i] come from member i, blocks in member order.
  virtual void all_to_all_v(const float* send, std::span<const int64_t> send_counts, float* recv,
                            std::span<const int64_t> recv_counts) = 0;
  virtual void broadcast(float* data, int64_t n, int root) = 0;
  virtual void broadcast_bytes(void* data, int64_t nbytes, int root) = 0;
  virtual void send(const float* data, int64_t n, int peer, int tag) = 0;
  virtual void recv(float* data, int64_t n, int peer, int tag) = 0;
  virtual void barrier() = 0;
};

// The trivial backend: one member, every collective is a copy.
std::unique_ptr<Communicator> make_single_rank_communicator(std::string name);

}  // namespace foldmoe
