// model_flops_per_token against numbers worked out by hand from Megatron-LM's FLOP formula
// (docs/dense-parallel.md §11), not from the code under test.
#include <gtest/gtest.h>

#include "config/config.h"
#include "train/flops.h"

namespace foldmoe {
namespace {

// Every field the formula reads, set explicitly so that changes of defaults cannot move the result.
Config flops_config(int layers, int hidden, int heads, int kv_heads, int head_dim, int ffn, int vocab,
                    int seq_len, int experts, int topk, int moe_ffn, int shared_ffn, int layer_freq) {
  Config c;
  c.model.layers = layers;
  c.model.hidden = hidden;
  c.model.heads = heads;
  c.model.kv_heads = kv_heads;
  c.model.head_dim = head_dim;
  c.model.ffn = ffn;
  c.model.vocab = vocab;
  c.train.seq_len = seq_len;
  c.moe.num_experts = experts;
  c.moe.topk = topk;
  c.moe.ffn_hidden_size = moe_ffn;
  c.moe.shared_expert_ffn_hidden_size = shared_ffn;
  c.moe.layer_freq = {layer_freq};
  return c;
}

TEST(Flops, BenchSmallAllMoE) {
  // attention 12·4·256²·(1 + 4/8 + 256/512)·1 = 6,291,456; experts 12·4·256·(512·2·1.5) =
  // 18,874,368; logits 6·256·4096 = 6,291,456.
  const Config c = flops_config(4, 256, 8, 4, 32, 1024, 4096, 256, 8, 2, 512, 0, 1);
  EXPECT_DOUBLE_EQ(model_flops_per_token(c), 31457280.0);
}

TEST(Flops, Mixtral8x22B) {
  // mlp 12·56·6144·(16384·2·1.5) = 202,937,204,736; attention 12·56·6144²·(1 + 8/48 + 4096/12288)
  // = 38,050,725,888; logits 6·6144·32000 = 1,179,648,000.
  const Config c = flops_config(56, 6144, 48, 8, 128, 16384, 32000, 4096, 8, 2, 16384, 0, 1);
  EXPECT_DOUBLE_EQ(model_flops_per_token(c), 242167578624.0);
}

TEST(Flops, MixedDenseMoEWithSharedExpertAndWideHeads) {
  // Layers 0 and 2 MoE (layer_freq 2), 1 and 3 dense. mlp 12·4·96·(256·1.5·2/4 + 128·2·1.5·2/4 +
  // 64·1.5·2/4) = 12·4·96·432 = 1,990,656; head_dim 32 ≠ 96/4: attention 12·4·96²·(1 + 2/4 +
  // 64/192)·(32·4/96) = 1,081,344; logits 6·96·98 = 56,448.
  const Config c = flops_config(4, 96, 4, 2, 32, 256, 98, 64, 4, 2, 128, 64, 2);
  EXPECT_DOUBLE_EQ(model_flops_per_token(c), 1990656.0 + 1081344.0 + 56448.0);
}

TEST(Flops, DenseModelCountsNoExperts) {
  // 12·2·64·(128·1.5) = 294,912; attention 12·2·64²·(1 + 1/4 + 32/128)·1 = 147,456; logits 6·64·50.
  const Config c = flops_config(2, 64, 4, 1, 16, 128, 50, 32, 0, 2, 0, 0, 1);
  EXPECT_DOUBLE_EQ(model_flops_per_token(c), 294912.0 + 147456.0 + 19200.0);
}

}  // namespace
}  // namespace foldmoe
