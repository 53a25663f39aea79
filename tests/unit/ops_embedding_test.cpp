#include <gtest/gtest.h>

#include "grad_check.h"
#include "ops/embedding.h"

using namespace foldmoe;

TEST(OpsEmbedding, ForwardGathersRows) {
  const int64_t V = 5, H = 3;
  auto table = test::randn(size_t(V * H), "table");
  const std::vector<int32_t> ids = {4, 0, 4, 2};
  std::vector<double> out(ids.size() * H);
  ops::embedding_forward(table.data(), ids.data(), out.data(), int64_t(ids.size()), H);
  for (size_t n = 0; n < ids.size(); ++n)
    for (int64_t j = 0; j < H; ++j) EXPECT_EQ(out[n * H + size_t(j)], table[size_t(ids[n] * H + j)]);
}

TEST(OpsEmbedding, BackwardMatchesFiniteDifferences) {
  const int64_t V = 6, H = 4;
  const std::vector<int32_t> ids = {1, 3, 1, 5, 0, 1};  // repeats must accumulate
  const int64_t n = int64_t(ids.size());
  auto table = test::randn(size_t(V * H), "table"), R = test::randn(size_t(n * H), "R");
  auto loss = [&] {
    std::vector<double> out(size_t(n * H));
    ops::embedding_forward(table.data(), ids.data(), out.data(), n, H);
    return test::dot(out, R);
  };
  std::vector<double> dtable(table.size(), 0.0);
  ops::embedding_backward(ids.data(), R.data(), dtable.data(), n, H);
  EXPECT_LT(test::rel_err(dtable, test::numeric_grad(table, loss)), test::kFdTol);
  for (int64_t j = 0; j < H; ++j) EXPECT_EQ(dtable[size_t(2 * H + j)], 0.0);  // id 2 unused
}
