// A tiny in-process communicator for MoE unit tests: members are threads of one process and only
// all_reduce is supported (enough to check how pieces of a statistic split over a group).
#pragma once

#include <barrier>
#include <memory>
#include <vector>

#include "comm/communicator.h"
#include "core/check.h"

namespace foldmoe::moetest {

struct ThreadGroupState {
  explicit ThreadGroupState(int n) : size(n), bar(n), slots(size_t(n)) {}
  int size;
  std::barrier<> bar;
  std::vector<std::vector<double>> slots;
};

class ThreadComm final : public Communicator {
 public:
  ThreadComm(std::shared_ptr<ThreadGroupState> g, int rank) : g_(std::move(g)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return g_->size; }
  std::string name() const override { return "thread"; }
  void all_reduce(double* d, int64_t n, ReduceOp) override {
    history.emplace_back(d, d + n);
    g_->slots[size_t(rank_)].assign(d, d + n);
    g_->bar.arrive_and_wait();
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int r = 0; r < g_->size; ++r) s += g_->slots[size_t(r)][size_t(i)];
      d[i] = s;
    }
    g_->bar.arrive_and_wait();
  }
  void all_reduce(float* d, int64_t n, ReduceOp op) override {
    std::vector<double> t(d, d + n);
    all_reduce(t.data(), n, op);
    for (int64_t i = 0; i < n; ++i) d[i] = float(t[size_t(i)]);
  }
  void all_gather(const float*, float*, int64_t) override { fail(); }
  void all_gather_v(const float*, float*, std::span<const int64_t>) override { fail(); }
  void reduce_scatter(const float*, float*, int64_t) override { fail(); }
  void reduce_scatter_v(const float*, float*, std::span<const int64_t>) override { fail(); }
  void all_to_all_v(const float*, std::span<const int64_t>, float*, std::span<const int64_t>) override { fail(); }
  void broadcast(float*, int64_t, int) override { fail(); }
  void broadcast_bytes(void*, int64_t, int) override { fail(); }
  void send(const float*, int64_t, int, int) override { fail(); }
  void recv(float*, int64_t, int, int) override { fail(); }
  void barrier() override { g_->bar.arrive_and_wait(); }

  std::vector<std::vector<double>> history;  // inputs of every all_reduce, in call order

 private:
  [[noreturn]] static void fail() { FOLDMOE_CHECK(false, "ThreadComm supports all_reduce only"); }
  std::shared_ptr<ThreadGroupState> g_;
  int rank_;
};

}  // namespace foldmoe::moetest
