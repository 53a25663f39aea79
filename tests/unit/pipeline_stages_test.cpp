// Pipeline layer assignment (docs/pipeline.md §6.1, docs/topology.md §5 L12).
#include "parallel/pipeline_stages.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/check.h"

namespace foldmoe {
namespace {

std::vector<int> range(int a, int b) {
  std::vector<int> v;
  for (int i = a; i < b; ++i) v.push_back(i);
  return v;
}

template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const UserError& e) {
    return e.what();
  }
  return "";
}

TEST(PipelineStages, EvenSplit) {
  const PipelineLayout l = PipelineLayout::even(8, 4);
  EXPECT_EQ(l.pp(), 4);
  EXPECT_EQ(l.vpp(), 1);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(l.layers_of(r), range(2 * r, 2 * r + 2));
    EXPECT_EQ(l.stage_layers(r), range(2 * r, 2 * r + 2));
  }
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(l.stage_of_layer(i), i / 2);
    EXPECT_EQ(l.chunk_of_layer(i), 0);
  }
  EXPECT_TRUE(l.has_embedding(0, 0));
  EXPECT_FALSE(l.has_embedding(1, 0));
  EXPECT_TRUE(l.has_head(3, 0));
  EXPECT_FALSE(l.has_head(2, 0));
  EXPECT_TRUE(l.stage_has_embedding(0));
  EXPECT_TRUE(l.stage_has_head(3));
}

TEST(PipelineStages, SingleStageOwnsEverything) {
  const PipelineLayout l = PipelineLayout::even(3, 1);
  EXPECT_EQ(l.layers_of(0), range(0, 3));
  EXPECT_TRUE(l.has_embedding(0, 0));
  EXPECT_TRUE(l.has_head(0, 0));
}

TEST(PipelineStages, VirtualChunks) {
  // L 8, PP 2, v 2: chunk c of stage r owns the 2 layers starting at c·4 + r·2.
  const PipelineLayout l = PipelineLayout::even(8, 2, 2);
  EXPECT_EQ(l.layers_of(0, 0), (std::vector<int>{0, 1}));
  EXPECT_EQ(l.layers_of(1, 0), (std::vector<int>{2, 3}));
  EXPECT_EQ(l.layers_of(0, 1), (std::vector<int>{4, 5}));
  EXPECT_EQ(l.layers_of(1, 1), (std::vector<int>{6, 7}));
  EXPECT_EQ(l.stage_layers(0), (std::vector<int>{0, 1, 4, 5}));
  EXPECT_EQ(l.stage_of_layer(5), 0);
  EXPECT_EQ(l.chunk_of_layer(5), 1);
  EXPECT_EQ(l.virtual_stage(1, 1), 3);
  EXPECT_TRUE(l.has_embedding(0, 0));
  EXPECT_FALSE(l.has_embedding(0, 1));
  EXPECT_TRUE(l.has_head(1, 1));
  EXPECT_FALSE(l.has_head(1, 0));
  // General formula, L 24, PP 4, v 3.
  const PipelineLayout g = PipelineLayout::even(24, 4, 3);
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 3; ++c) {
      const int start = c * (24 / 3) + r * 24 / (4 * 3);
      EXPECT_EQ(g.layers_of(r, c), range(start, start + 2)) << r << " " << c;
    }
}

TEST(PipelineStages, ExplicitUnevenSplitKeepsGlobalIndices) {
  const PipelineLayout l = PipelineLayout::explicit_counts(7, 3, {3, 1, 3});
  EXPECT_EQ(l.layers_of(0), range(0, 3));
  EXPECT_EQ(l.layers_of(1), range(3, 4));
  EXPECT_EQ(l.layers_of(2), range(4, 7));
  EXPECT_EQ(l.stage_of_layer(3), 1);
  EXPECT_EQ(l.stage_of_layer(6), 2);
  // Explicit with virtual chunks: one count per virtual stage c·pp + r.
  const PipelineLayout v = PipelineLayout::explicit_counts(6, 2, {1, 2, 2, 1}, 2);
  EXPECT_EQ(v.layers_of(0, 0), range(0, 1));
  EXPECT_EQ(v.layers_of(1, 0), range(1, 3));
  EXPECT_EQ(v.layers_of(0, 1), range(3, 5));
  EXPECT_EQ(v.layers_of(1, 1), range(5, 6));
}

TEST(PipelineStages, ErrorsNameRuleL12NumbersAndFix) {
  std::string e = error_of([] { PipelineLayout::even(7, 2); });
  EXPECT_NE(e.find("layout error L12:"), std::string::npos) << e;
  EXPECT_NE(e.find("layers = 7"), std::string::npos) << e;
  EXPECT_NE(e.find("pp = 2"), std::string::npos) << e;
  EXPECT_NE(e.find("\n  fix: "), std::string::npos) << e;

  e = error_of([] { PipelineLayout::even(8, 2, 3); });
  EXPECT_NE(e.find("layout error L12:"), std::string::npos) << e;
  EXPECT_NE(e.find("pp*vpp = 2*3 = 6"), std::string::npos) << e;

  e = error_of([] { PipelineLayout::even(8, 1, 2); });
  EXPECT_NE(e.find("vpp = 2 (interleaved schedule) needs pp >= 2"), std::string::npos) << e;

  e = error_of([] { PipelineLayout::explicit_counts(7, 3, {3, 3, 3}); });
  EXPECT_NE(e.find("layout error L12:"), std::string::npos) << e;
  EXPECT_NE(e.find("sums to 9"), std::string::npos) << e;
  EXPECT_NE(e.find("layers = 7"), std::string::npos) << e;
  EXPECT_NE(e.find("fix: make the counts sum to 7"), std::string::npos) << e;

  // Every violation is listed: a zero entry and a wrong sum.
  e = error_of([] { PipelineLayout::explicit_counts(7, 3, {4, 0, 2}); });
  EXPECT_NE(e.find("2 configuration errors"), std::string::npos) << e;
  EXPECT_NE(e.find("virtual stage 1 (stage 1, chunk 0) gets 0 layers"), std::string::npos) << e;
  EXPECT_NE(e.find("sums to 6"), std::string::npos) << e;

  e = error_of([] { PipelineLayout::explicit_counts(6, 3, {3, 3}); });
  EXPECT_NE(e.find("has 2 entries"), std::string::npos) << e;
  EXPECT_NE(e.find("(3 entries)"), std::string::npos) << e;

  EXPECT_EQ(error_of([] { PipelineLayout::explicit_counts(7, 2, {6, 1}); }), "");
}

}  // namespace
}  // namespace foldmoe
