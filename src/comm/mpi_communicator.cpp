// Open MPI backend. Deterministic reductions: gather, then sum in member order (docs/moe.md §6.5).
#include "comm/mpi_communicator.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <vector>

#include "comm/mpi_watchdog.h"
#include "core/check.h"
#include "core/trace.h"

namespace foldmoe {
namespace {

int to_int(int64_t v, const char* what) {
  FOLDMOE_CHECK(v >= 0 && v <= INT_MAX, "MPI {} {} does not fit in an int (split the message)", what, v);
  return int(v);
}

template <typename T>
MPI_Datatype mpi_type();
template <>
MPI_Datatype mpi_type<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype mpi_type<double>() { return MPI_DOUBLE; }

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, std::string name) : comm_(comm), name_(std::move(name)) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  ~MpiCommunicator() override {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  MPI_Comm comm() const { return comm_; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string name() const override { return name_; }
  CommStats stats() const override { return stats_; }
  void reset_stats() override { stats_ = {}; }

  void all_reduce(float* data, int64_t n, ReduceOp op) override { reduce_all(data, n, op); }
  void all_reduce(double* data, int64_t n, ReduceOp op) override { reduce_all(data, n, op); }

  void all_gather(const float* send, float* recv, int64_t n) override {
    Scope s(*this, CommStats::AllGather, n * 4 * (size_ - 1));
    if (size_ == 1) return copy(send, recv, n);
    const void* sb = send == recv + int64_t(rank_) * n ? MPI_IN_PLACE : send;
    MPI_Allgather(sb, to_int(n, "count"), MPI_FLOAT, recv, to_int(n, "count"), MPI_FLOAT, comm_);
  }

  void all_gather_v(const float* send, float* recv, std::span<const int64_t> counts) override {
    check_counts(counts);
    Scope s(*this, CommStats::AllGather, counts[size_t(rank_)] * 4 * (size_ - 1));
    if (size_ == 1) return copy(send, recv, counts[0]);
    std::vector<int> cnt(static_cast<size_t>(size_)), dsp(static_cast<size_t>(size_));
    int64_t off = 0;
    for (int i = 0; i < size_; ++i) {
      cnt[size_t(i)] = to_int(counts[size_t(i)], "count");
      dsp[size_t(i)] = to_int(off, "displacement");
      off += counts[size_t(i)];
    }
    const void* sb = send == recv + dsp[size_t(rank_)] ? MPI_IN_PLACE : send;
    MPI_Allgatherv(sb, cnt[size_t(rank_)], MPI_FLOAT, recv, cnt.data(), dsp.data(), MPI_FLOAT, comm_);
  }

  void reduce_scatter(const float* send, float* recv, int64_t n) override {
    std::vector<int64_t> counts(size_t(size_), n);
    reduce_scatter_v(send, recv, counts);
  }

  void reduce_scatter_v(const float* send, float* recv, std::span<const int64_t> counts) override {
    check_counts(counts);
    const int64_t mine = counts[size_t(rank_)];
    const int64_t total = std::accumulate(counts.begin(), counts.end(), int64_t(0));
    Scope s(*this, CommStats::ReduceScatter, (total - mine) * 4);
    if (size_ == 1) return copy(send, recv, mine);
    // Member j's block of every member lands at tmp[i * mine], summed below in member order.
    std::vector<int> sc(static_cast<size_t>(size_)), sd(static_cast<size_t>(size_)), rc(static_cast<size_t>(size_)), rd(static_cast<size_t>(size_));
    int64_t off = 0;
    for (int i = 0; i < size_; ++i) {
      sc[size_t(i)] = to_int(counts[size_t(i)], "count");
      sd[size_t(i)] = to_int(off, "displacement");
      off += counts[size_t(i)];
      rc[size_t(i)] = to_int(mine, "count");
      rd[size_t(i)] = to_int(int64_t(i) * mine, "displacement");
    }
    std::vector<float> tmp(size_t(mine * size_));
    MPI_Alltoallv(send, sc.data(), sd.data(), MPI_FLOAT, tmp.data(), rc.data(), rd.data(), MPI_FLOAT, comm_);
    for (int64_t k = 0; k < mine; ++k) {
      float acc = tmp[size_t(k)];
      for (int i = 1; i < size_; ++i) acc += tmp[size_t(int64_t(i) * mine + k)];
      recv[k] = acc;
    }
  }

  void all_to_all_v(const float* send, std::span<const int64_t> send_counts, float* recv,
                    std::span<const int64_t> recv_counts) override {
    check_counts(send_counts);
    check_counts(recv_counts);
    const int64_t total = std::accumulate(send_counts.begin(), send_counts.end(), int64_t(0));
    Scope s(*this, CommStats::AllToAll, (total - send_counts[size_t(rank_)]) * 4);
    if (size_ == 1) {
      FOLDMOE_CHECK(send_counts[0] == recv_counts[0], "all-to-all of one member with unequal splits {} vs {}",
                    send_counts[0], recv_counts[0]);
      return copy(send, recv, send_counts[0]);
    }
    std::vector<int> sc(static_cast<size_t>(size_)), sd(static_cast<size_t>(size_)), rc(static_cast<size_t>(size_)), rd(static_cast<size_t>(size_));
    int64_t so = 0, ro = 0;
    for (int i = 0; i < size_; ++i) {
      sc[size_t(i)] = to_int(send_counts[size_t(i)], "count");
      sd[size_t(i)] = to_int(so, "displacement");
      so += send_counts[size_t(i)];
      rc[size_t(i)] = to_int(recv_counts[size_t(i)], "count");
      rd[size_t(i)] = to_int(ro, "displacement");
      ro += recv_counts[size_t(i)];
    }
    FOLDMOE_CHECK(send != recv || (so == 0 && ro == 0), "all_to_all_v with send == recv");
    MPI_Alltoallv(send, sc.data(), sd.data(), MPI_FLOAT, recv, rc.data(), rd.data(), MPI_FLOAT, comm_);
  }

  void broadcast(float* data, int64_t n, int root) override {
    broadcast_bytes(data, n * int64_t(sizeof(float)), root);
  }

  void broadcast_bytes(void* data, int64_t nbytes, int root) override {
    FOLDMOE_CHECK(root >= 0 && root < size_, "broadcast root {} outside group of {}", root, size_);
    Scope s(*this, CommStats::Broadcast, rank_ == root ? nbytes * (size_ - 1) : 0);
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    for (int64_t off = 0; off < nbytes; off += INT_MAX) {
      const int c = int(std::min<int64_t>(INT_MAX, nbytes - off));
      MPI_Bcast(p + off, c, MPI_BYTE, root, comm_);
    }
    if (nbytes == 0) MPI_Bcast(p, 0, MPI_BYTE, root, comm_);  // keep the call collective
  }

  void send(const float* data, int64_t n, int peer, int tag) override {
    FOLDMOE_CHECK(peer >= 0 && peer < size_ && peer != rank_, "send to invalid peer {} (rank {} of {})", peer, rank_, size_);
    Scope s(*this, CommStats::SendRecv, n * 4);
    MPI_Send(data, to_int(n, "count"), MPI_FLOAT, peer, tag, comm_);
  }

  int64_t isend(const float* data, int64_t n, int peer, int tag) override {
    FOLDMOE_CHECK(peer >= 0 && peer < size_ && peer != rank_, "isend to invalid peer {} (rank {} of {})", peer, rank_, size_);
    Scope s(*this, CommStats::SendRecv, n * 4);
    MPI_Request req;
    MPI_Isend(data, to_int(n, "count"), MPI_FLOAT, peer, tag, comm_, &req);
    pending_sends_[++last_send_] = req;
    return last_send_;
  }

  bool test_send(int64_t handle) override {
    auto it = pending_sends_.find(handle);
    FOLDMOE_CHECK(it != pending_sends_.end(), "test of unknown send handle {}", handle);
    int done = 0;
    MPI_Test(&it->second, &done, MPI_STATUS_IGNORE);
    if (done) pending_sends_.erase(it);
    return done != 0;
  }

  void wait_send(int64_t handle) override {
    auto it = pending_sends_.find(handle);
    FOLDMOE_CHECK(it != pending_sends_.end(), "wait on unknown send handle {}", handle);
    Scope s(*this, CommStats::SendRecv, 0);
    stats_.calls[CommStats::SendRecv] -= 1;  // a wait is part of its send, not another call
    MPI_Wait(&it->second, MPI_STATUS_IGNORE);
    pending_sends_.erase(it);
  }

  bool nonblocking_p2p() const override { return true; }

  int64_t irecv(float* data, int64_t n, int peer, int tag) override {
    FOLDMOE_CHECK(peer >= 0 && peer < size_ && peer != rank_, "irecv from invalid peer {} (rank {} of {})", peer, rank_, size_);
    MPI_Request req;
    MPI_Irecv(data, to_int(n, "count"), MPI_FLOAT, peer, tag, comm_, &req);
    pending_recvs_[++last_recv_] = {req, n};
    return last_recv_;
  }

  void wait_recv(int64_t handle) override {
    auto it = pending_recvs_.find(handle);
    FOLDMOE_CHECK(it != pending_recvs_.end(), "wait on unknown receive handle {}", handle);
    Scope s(*this, CommStats::SendRecv, 0);
    MPI_Status st;
    MPI_Wait(&it->second.first, &st);
    int got = 0;
    MPI_Get_count(&st, MPI_FLOAT, &got);
    const int64_t want = it->second.second;
    pending_recvs_.erase(it);
    FOLDMOE_CHECK(got == want, "irecv handle {}: expected {} floats, got {}", handle, want, got);
  }

  void recv(float* data, int64_t n, int peer, int tag) override {
    FOLDMOE_CHECK(peer >= 0 && peer < size_ && peer != rank_, "recv from invalid peer {} (rank {} of {})", peer, rank_, size_);
    Scope s(*this, CommStats::SendRecv, 0);
    MPI_Status st;
    MPI_Recv(data, to_int(n, "count"), MPI_FLOAT, peer, tag, comm_, &st);
    int got = 0;
    MPI_Get_count(&st, MPI_FLOAT, &got);
    FOLDMOE_CHECK(got == n, "recv from peer {} tag {}: expected {} floats, got {}", peer, tag, n, got);
  }

  void barrier() override {
    Scope s(*this, CommStats::Barrier, 0);
    if (size_ > 1) MPI_Barrier(comm_);
  }

 private:
  // Times one call, counts its bytes and shows it to the watchdog (parallel.timeout_s).
  struct Scope {
    Scope(MpiCommunicator& c, CommStats::Kind k, int64_t bytes)
        : c_(c), kind_(k), bytes_(bytes), t0_(std::chrono::steady_clock::now()) {
      c.stats_.bytes[size_t(k)] += bytes;
      c.stats_.calls[size_t(k)] += 1;
      if (trace::recording()) wall0_ = std::chrono::system_clock::now();
      watchdog_enter(CommStats::kind_name(k), &c.name_, c.rank_, c.size_);
    }
    ~Scope() {
      watchdog_leave();
      c_.stats_.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count();
      // A profiled step records every collective as an event of the Chrome trace.
      if (trace::recording() && wall0_.time_since_epoch().count() != 0)
        trace::record(fmt::format("{} {} ({} B)", CommStats::kind_name(kind_), c_.name_, bytes_), "comm", wall0_,
                      std::chrono::system_clock::now());
    }
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;
    MpiCommunicator& c_;
    CommStats::Kind kind_;
    int64_t bytes_;
    std::chrono::steady_clock::time_point t0_;
    std::chrono::system_clock::time_point wall0_{};
  };

  void check_counts(std::span<const int64_t> counts) const {
    FOLDMOE_CHECK(counts.size() == size_t(size_), "{} split counts for a group of {} ({})", counts.size(), size_, name_);
  }
  static void copy(const float* s, float* d, int64_t n) {
    if (s != d && n > 0) std::memmove(d, s, size_t(n) * sizeof(float));
  }

  template <typename T>
  void reduce_all(T* data, int64_t n, ReduceOp op) {
    Scope s(*this, CommStats::AllReduce, n * int64_t(sizeof(T)) * (size_ - 1));
    if (size_ == 1 || n == 0) {
      if (size_ > 1) MPI_Barrier(comm_);  // keep an empty all-reduce a synchronisation point
      return;
    }
    // Chunks bound the gather buffer to ~16 MiB of floats whatever n is.
    const int64_t chunk = std::max<int64_t>(1, (int64_t(1) << 22) / size_);
    std::vector<T> buf(size_t(std::min(chunk, n) * size_));
    for (int64_t off = 0; off < n; off += chunk) {
      const int64_t c = std::min(chunk, n - off);
      MPI_Allgather(data + off, int(c), mpi_type<T>(), buf.data(), int(c), mpi_type<T>(), comm_);
      for (int64_t k = 0; k < c; ++k) {
        T acc = buf[size_t(k)];
        for (int i = 1; i < size_; ++i) {
          const T v = buf[size_t(int64_t(i) * c + k)];
          acc = op == ReduceOp::Sum ? T(acc + v) : std::max(acc, v);
        }
        data[off + k] = acc;
      }
    }
  }

  MPI_Comm comm_;
  std::string name_;
  int rank_ = 0, size_ = 1;
  CommStats stats_;
  std::map<int64_t, MPI_Request> pending_sends_;
  std::map<int64_t, std::pair<MPI_Request, int64_t>> pending_recvs_;  // request, expected count
  int64_t last_send_ = 0, last_recv_ = 0;
};

}  // namespace

MpiRuntime::MpiRuntime(int* argc, char*** argv) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) {
    int provided = 0;
    MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    owns_ = true;
  }
}

MpiRuntime::~MpiRuntime() {
  stop_watchdog();
  world_.reset();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_ && !finalized) MPI_Finalize();
}

int MpiRuntime::world_rank() const {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int MpiRuntime::world_size() const {
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

std::shared_ptr<Communicator> MpiRuntime::world() {
  if (!world_) {
    MPI_Comm dup;
    MPI_Comm_dup(MPI_COMM_WORLD, &dup);
    world_ = std::make_shared<MpiCommunicator>(dup, "world");
  }
  return world_;
}

bool mpi_running() {
  int inited = 0, finalized = 0;
  MPI_Initialized(&inited);
  MPI_Finalized(&finalized);
  return inited && !finalized;
}

int mpi_world_size() {
  if (!mpi_running()) return 1;
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

void abort_mpi_job(int code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, code);
  std::_Exit(code);  // MPI_Abort does not return; this keeps the promise of [[noreturn]]
}

bool is_mpi_communicator(const Communicator& c) { return dynamic_cast<const MpiCommunicator*>(&c) != nullptr; }

std::shared_ptr<Communicator> mpi_split(Communicator& parent, const RankGroups& groups, const std::string& name) {
  auto* p = dynamic_cast<MpiCommunicator*>(&parent);
  FOLDMOE_CHECK(p != nullptr, "mpi_split of a non-MPI communicator '{}'", parent.name());
  const auto [g, m] = Topology::locate(groups, p->rank());
  MPI_Comm out = MPI_COMM_NULL;
  MPI_Comm_split(p->comm(), g < 0 ? MPI_UNDEFINED : g, m < 0 ? 0 : m, &out);
  if (out == MPI_COMM_NULL) return nullptr;
  auto c = std::make_shared<MpiCommunicator>(out, name);
  FOLDMOE_CHECK(c->size() == int(groups[size_t(g)].size()) && c->rank() == m,
                "group '{}': MPI made rank {} of {}, expected member {} of {}", name, c->rank(), c->size(), m,
                groups[size_t(g)].size());
  return c;
}

ProcessGroups make_process_groups(const Topology& topo, Communicator& world_mpi) {
  const ParallelSizes& s = topo.sizes();
  FOLDMOE_CHECK(world_mpi.size() == s.world, "layout for {} ranks launched on {} ranks", s.world, world_mpi.size());
  const TopologyGroups& t = topo.groups();
  ProcessGroups g;
  g.sizes = s;
  g.coords = topo.coords(world_mpi.rank());
  std::vector<int> all(size_t(s.world));
  std::iota(all.begin(), all.end(), 0);
  g.world = mpi_split(world_mpi, {all}, "world");
  g.tp = mpi_split(world_mpi, t.tp, "tp");
  g.cp = mpi_split(world_mpi, t.cp, "cp");
  g.dp = mpi_split(world_mpi, t.dp, "dp");
  g.pp = mpi_split(world_mpi, t.pp, "pp");
  g.dp_cp = mpi_split(world_mpi, t.dp_cp, "dp_cp");
  g.tp_cp = mpi_split(world_mpi, t.tp_cp, "tp_cp");
  g.tp_pp = mpi_split(world_mpi, t.tp_pp, "tp_pp");
  g.tp_dp_cp = mpi_split(world_mpi, t.tp_dp_cp, "tp_dp_cp");
  g.etp = mpi_split(world_mpi, t.etp, "etp");
  g.ep = mpi_split(world_mpi, t.ep, "ep");
  g.edp = mpi_split(world_mpi, t.edp, "edp");
  g.etp_ep = mpi_split(world_mpi, t.etp_ep, "etp_ep");
  g.etp_ep_pp = mpi_split(world_mpi, t.etp_ep_pp, "etp_ep_pp");
  g.embedding = mpi_split(world_mpi, t.embedding, "embedding");
  return g;
}

}  // namespace foldmoe
