// main() of foldmoe_parallel_tests (run under mpirun, see tests/tests.cmake): initialises MPI,
// lets only rank 0 print the GoogleTest report (other ranks print their failures, prefixed with
// their rank), and exits non-zero on every rank if any rank failed.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "parallel_env.h"

namespace foldmoe::partest {

std::shared_ptr<Communicator>& world_slot() {
  static std::shared_ptr<Communicator> w;
  return w;
}

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  // (UnitTest::current_test_info() must not be called from OnTestPartResult: it takes the lock
  // that AddTestPartResult holds.)
  void OnTestStart(const ::testing::TestInfo& info) override {
    test_ = std::string(info.test_suite_name()) + "." + info.name();
  }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (!r.failed()) return;
    std::fprintf(stderr, "[rank %d] FAILED %s at %s:%d\n%s\n", rank_, test_.c_str(),
                 r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
    std::fflush(stderr);
  }

 private:
  int rank_;
  std::string test_;
};

}  // namespace
}  // namespace foldmoe::partest

int main(int argc, char** argv) {
  foldmoe::MpiRuntime mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  foldmoe::partest::world_slot() = mpi.world();
  const int rank = mpi.world_rank();
  auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
  if (rank != 0) {
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new foldmoe::partest::FailurePrinter(rank));
  }
  double failed = RUN_ALL_TESTS() != 0 ? 1.0 : 0.0;
  foldmoe::partest::world_slot()->all_reduce(&failed, 1, foldmoe::ReduceOp::Max);
  if (rank == 0 && failed != 0) std::fprintf(stderr, "foldmoe_parallel_tests: a test failed on some rank\n");
  foldmoe::partest::world_slot().reset();
  return failed != 0 ? 1 : 0;
}
