// The pipeline executor over an in-process communicator of PP threads whose send is synchronous
// (it returns only after the matching receive took the data): the strictest p2p semantics.
#include "parallel/pipeline_executor.h"

#include "rendezvous_comm.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace foldmoe {
namespace {

// A toy model: every virtual stage adds 1 to the activation in the forward and 1 to the gradient in
// the backward; micro-batch m starts at 1000·m. Message size 3 floats.
void run_toy(const PipeScheduleSpec& s) {
  const int pp = s.pp, v = s.vpp, M = s.micro_batches, nvs = pp * v;
  constexpr int n = 3;
  RendezvousState st;
  std::vector<std::string> errors(static_cast<size_t>(pp));
  std::vector<std::vector<PipeAction>> ran(static_cast<size_t>(pp));
  std::vector<std::vector<float>> final_act(static_cast<size_t>(M)), final_grad(static_cast<size_t>(M));
  std::mutex out_mu;
  auto body = [&](int r) {
    RendezvousComm comm(st, r, pp);
    // [mb][chunk] buffers: input/output activations and gradients.
    auto mk = [&] {
      return std::vector<std::vector<std::vector<float>>>(
          size_t(M), std::vector<std::vector<float>>(size_t(v), std::vector<float>(n, -1)));
    };
    auto act_in = mk(), act_out = mk(), grad_in = mk(), grad_out = mk();
    PipelineCallbacks cb;
    cb.forward = [&](int m, int c) {
      ran[size_t(r)].push_back({PipeOp::Forward, m, c});
      const int vs = c * pp + r;
      std::vector<float> x = vs == 0 ? std::vector<float>(n, float(1000 * m)) : act_in[size_t(m)][size_t(c)];
      for (float& e : x) e += 1;
      act_out[size_t(m)][size_t(c)] = x;
      if (vs == nvs - 1) {
        std::lock_guard g(out_mu);
        final_act[size_t(m)] = x;
      }
    };
    cb.backward = [&](int m, int c) {
      ran[size_t(r)].push_back({PipeOp::Backward, m, c});
      const int vs = c * pp + r;
      std::vector<float> gr = vs == nvs - 1 ? std::vector<float>(n, float(1000 * m)) : grad_in[size_t(m)][size_t(c)];
      for (float& e : gr) e += 1;
      grad_out[size_t(m)][size_t(c)] = gr;
      if (vs == 0) {
        std::lock_guard g(out_mu);
        final_grad[size_t(m)] = gr;
      }
    };
    cb.send_buffer = [&](const PipeAction& a) -> std::span<const float> {
      auto& b = a.op == PipeOp::SendForward ? act_out : grad_out;
      return b[size_t(a.microbatch)][size_t(a.chunk)];
    };
    cb.recv_buffer = [&](const PipeAction& a) -> std::span<float> {
      auto& b = a.op == PipeOp::RecvForward ? act_in : grad_in;
      return b[size_t(a.microbatch)][size_t(a.chunk)];
    };
    try {
      run_pipeline_step(s, comm, cb, /*tag_base=*/100);
    } catch (const std::exception& e) {
      errors[size_t(r)] = e.what();
    }
  };
  std::vector<std::thread> threads;
  for (int r = 0; r < pp; ++r) threads.emplace_back(body, r);
  for (std::thread& t : threads) t.join();
  const std::string name = fmt::format("pp {} M {} v {} g {}", pp, M, v, s.g());
  for (int r = 0; r < pp; ++r) {
    EXPECT_EQ(errors[size_t(r)], "") << name << " stage " << r;
    EXPECT_EQ(ran[size_t(r)], pipeline_compute_schedule(s, r)) << name << " stage " << r;
  }
  for (int m = 0; m < M; ++m) {
    EXPECT_EQ(final_act[size_t(m)], std::vector<float>(n, float(1000 * m + nvs))) << name << " mb " << m;
    EXPECT_EQ(final_grad[size_t(m)], std::vector<float>(n, float(1000 * m + nvs))) << name << " mb " << m;
  }
  EXPECT_TRUE(st.posted.empty()) << name;
}

TEST(PipelineExecutor, SynchronousSendRecvThreads) {
  run_toy({.pp = 1, .micro_batches = 3});
  for (int pp : {2, 3, 4})
    for (int M : {pp, pp + 1, 2 * pp, 3 * pp}) run_toy({.pp = pp, .micro_batches = M});
  run_toy({.pp = 2, .micro_batches = 4, .vpp = 2, .group = 2});
  run_toy({.pp = 2, .micro_batches = 5, .vpp = 2, .group = 3});
  run_toy({.pp = 4, .micro_batches = 8, .vpp = 2});
  run_toy({.pp = 3, .micro_batches = 7, .vpp = 3, .group = 4});
}

}  // namespace
}  // namespace foldmoe
