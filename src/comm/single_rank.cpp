#include <algorithm>

#include "comm/communicator.h"
#include "core/check.h"

namespace foldmoe {
namespace {

class SingleRankCommunicator final : public Communicator {
 public:
  explicit SingleRankCommunicator(std::string name) : name_(std::move(name)) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return name_; }

  void all_reduce(float*, int64_t, ReduceOp) override {}
  void all_reduce(double*, int64_t, ReduceOp) override {}
  void all_gather(const float* send, float* recv, int64_t n) override { copy(send, recv, n); }
  void all_gather_v(const float* send, float* recv, std::span<const int64_t> counts) override {
    copy(send, recv, counts[0]);
  }
  void reduce_scatter(const float* send, float* recv, int64_t n) override { copy(send, recv, n); }
  void reduce_scatter_v(const float* send, float* recv, std::span<const int64_t> counts) override {
    copy(send, recv, counts[0]);
  }
  void all_to_all_v(const float* send, std::span<const int64_t> sc, float* recv,
                    std::span<const int64_t> rc) override {
    FOLDMOE_CHECK(sc[0] == rc[0], "single-rank all-to-all with unequal splits {} vs {}", sc[0], rc[0]);
    copy(send, recv, sc[0]);
  }
  void broadcast(float*, int64_t, int) override {}
  void broadcast_bytes(void*, int64_t, int) override {}
  void send(const float*, int64_t, int, int) override { FOLDMOE_CHECK(false, "send in a group of one"); }
  void recv(float*, int64_t, int, int) override { FOLDMOE_CHECK(false, "recv in a group of one"); }
  void barrier() override {}

 private:
  static void copy(const float* s, float* d, int64_t n) {
    if (s != d && n > 0) std::copy(s, s + n, d);
  }
  std::string name_;
};

}  // namespace

const char* CommStats::kind_name(int kind) {
  static constexpr const char* kNames[] = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all",
                                           "broadcast",  "send_recv",  "barrier"};
  return kind >= 0 && kind < kNumKinds ? kNames[kind] : "?";
}

int64_t Communicator::irecv(float*, int64_t, int, int) {
  FOLDMOE_CHECK(false, "{}: non-blocking receive on a communicator without it (check nonblocking_p2p())", name());
  return 0;
}

void Communicator::wait_recv(int64_t) {
  FOLDMOE_CHECK(false, "{}: wait_recv on a communicator without non-blocking receives", name());
}

std::unique_ptr<Communicator> make_single_rank_communicator(std::string name) {
  return std::make_unique<SingleRankCommunicator>(std::move(name));
}

}  // namespace foldmoe
