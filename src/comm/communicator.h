// The collective-communication interface every component talks to (docs/design.md §3 rules 2 and 8).
// Backends: single-rank (comm/single_rank.cpp) and MPI (comm/mpi_communicator.*); a GPU backend adds
// one more implementation. No backend types leak out of it.
// A group of size 1 makes every collective a copy or a no-op, so single-rank code is the same
// code as multi-rank code.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace foldmoe {

enum class ReduceOp { Sum, Max };

// Traffic of one communicator as seen by this rank: logical payload bytes this rank sends to other
// members (independent of the backend's algorithm: an all-reduce of n floats over P members counts
// 4·n·(P-1), an all-to-all-v the blocks for the other members, a broadcast counts at the root
// only), the number of calls, and the wall time spent inside collectives.
struct CommStats {
  enum Kind { AllReduce, AllGather, ReduceScatter, AllToAll, Broadcast, SendRecv, Barrier, kNumKinds };
  std::array<int64_t, kNumKinds> bytes{};
  std::array<int64_t, kNumKinds> calls{};
  double seconds = 0;

  static const char* kind_name(int kind);  // "all_reduce", "all_gather", ...
  int64_t total_bytes() const {
    int64_t t = 0;
    for (int64_t b : bytes) t += b;
    return t;
  }
  CommStats& operator+=(const CommStats& o) {
    for (int k = 0; k < kNumKinds; ++k) bytes[size_t(k)] += o.bytes[size_t(k)], calls[size_t(k)] += o.calls[size_t(k)];
    seconds += o.seconds;
    return *this;
  }
};

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
  // Non-blocking send: returns a handle; `data` must stay unchanged until the send completed
  // (test_send returned true or wait_send returned). Default: a blocking send, complete at once.
  virtual int64_t isend(const float* data, int64_t n, int peer, int tag) {
    send(data, n, peer, tag);
    return 0;
  }
  virtual bool test_send(int64_t handle) { return true; }
  virtual void wait_send(int64_t handle) {}
  // Non-blocking receive into `data` (valid once wait_recv returned). Only backends whose
  // nonblocking_p2p() is true implement it; callers check first and fall back to send/recv.
  virtual bool nonblocking_p2p() const { return false; }
  virtual int64_t irecv(float* data, int64_t n, int peer, int tag);
  virtual void wait_recv(int64_t handle);
  virtual void barrier() = 0;

  // Traffic statistics (backends without accounting report zeros).
  virtual CommStats stats() const { return {}; }
  virtual void reset_stats() {}
};

// The trivial backend: one member, every collective is a copy.
std::unique_ptr<Communicator> make_single_rank_communicator(std::string name);

}  // namespace foldmoe
