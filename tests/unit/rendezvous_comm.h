// An in-process point-to-point communicator for PP threads whose send is synchronous (it returns
// only after the matching receive took the data): the strictest p2p semantics, for pipeline tests.
// Collectives are unsupported (a pipeline group only sends and receives).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <tuple>
#include <vector>

#include "comm/communicator.h"

namespace foldmoe {

struct RendezvousState {
  std::mutex mu;
  std::condition_variable cv;
  // (from, to, tag) -> posted send (data, n); erased by the receiver once copied.
  std::map<std::tuple<int, int, int>, std::pair<const float*, int64_t>> posted;
  bool failed = false;
};

class RendezvousComm final : public Communicator {
 public:
  // async: isend posts and returns at once (test_send / wait_send observe the receive), so a
  // caller that touches a buffer before its send completed may corrupt what the peer receives.
  RendezvousComm(RendezvousState& st, int rank, int size, bool async = false)
      : st_(st), rank_(rank), size_(size), async_(async) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return "pp"; }
  void all_reduce(float*, int64_t, ReduceOp) override { unsupported(); }
  void all_reduce(double*, int64_t, ReduceOp) override { unsupported(); }
  void all_gather(const float*, float*, int64_t) override { unsupported(); }
  void all_gather_v(const float*, float*, std::span<const int64_t>) override { unsupported(); }
  void reduce_scatter(const float*, float*, int64_t) override { unsupported(); }
  void reduce_scatter_v(const float*, float*, std::span<const int64_t>) override { unsupported(); }
  void all_to_all_v(const float*, std::span<const int64_t>, float*, std::span<const int64_t>) override {
    unsupported();
  }
  void broadcast(float*, int64_t, int) override { unsupported(); }
  void broadcast_bytes(void*, int64_t, int) override { unsupported(); }
  void barrier() override { unsupported(); }

  void send(const float* data, int64_t n, int peer, int tag) override {
    std::unique_lock lk(st_.mu);
    const auto key = std::make_tuple(rank_, peer, tag);
    if (st_.posted.count(key)) fail_locked("duplicate send");
    st_.posted[key] = {data, n};
    st_.cv.notify_all();
    wait(lk, [&] { return !st_.posted.count(key); });  // synchronous: until received
  }
  int64_t isend(const float* data, int64_t n, int peer, int tag) override {
    if (!async_) {
      send(data, n, peer, tag);
      return 0;
    }
    std::unique_lock lk(st_.mu);
    const auto key = std::make_tuple(rank_, peer, tag);
    if (st_.posted.count(key)) fail_locked("duplicate send");
    st_.posted[key] = {data, n};
    st_.cv.notify_all();
    handles_.push_back(key);
    return int64_t(handles_.size());
  }
  bool test_send(int64_t handle) override {
    if (!async_) return true;
    std::unique_lock lk(st_.mu);
    return !st_.posted.count(handles_.at(size_t(handle - 1)));
  }
  void wait_send(int64_t handle) override {
    if (!async_) return;
    std::unique_lock lk(st_.mu);
    const auto key = handles_.at(size_t(handle - 1));
    wait(lk, [&] { return !st_.posted.count(key); });
  }
  void recv(float* data, int64_t n, int peer, int tag) override {
    std::unique_lock lk(st_.mu);
    const auto key = std::make_tuple(peer, rank_, tag);
    wait(lk, [&] { return st_.posted.count(key) > 0; });
    const auto [src, m] = st_.posted[key];
    if (m != n) fail_locked("size mismatch");
    std::copy(src, src + n, data);
    st_.posted.erase(key);
    st_.cv.notify_all();
  }

 private:
  [[noreturn]] static void unsupported() { throw std::logic_error("unsupported collective"); }
  [[noreturn]] void fail_locked(const char* what) {
    st_.failed = true;
    st_.cv.notify_all();
    throw std::runtime_error(what);
  }
  template <typename Pred>
  void wait(std::unique_lock<std::mutex>& lk, Pred pred) {
    if (!st_.cv.wait_for(lk, std::chrono::seconds(20), [&] { return pred() || st_.failed; }) || st_.failed)
      fail_locked("deadlock (timed out) or peer failure");
  }
  RendezvousState& st_;
  int rank_, size_;
  bool async_ = false;
  std::vector<std::tuple<int, int, int>> handles_;
};

}  // namespace foldmoe
