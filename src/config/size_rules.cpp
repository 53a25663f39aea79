#include "config/size_rules.h"

#include <fmt/format.h>

#include <algorithm>
#include <string>

namespace foldmoe {

bool checked_product(std::initializer_list<int64_t> factors, int64_t* out) {
  int64_t acc = 1;
  for (int64_t f : factors)
    if (f < 0 || __builtin_mul_overflow(acc, f, &acc)) return false;
  *out = acc;
  return true;
}

namespace {

void product_rule(Problems& p, const std::string& what, std::initializer_list<int64_t> factors,
                  const std::string& fix) {
  int64_t n = 0;
  const bool fits = checked_product(factors, &n);
  if (fits && n <= kMaxTensorElements) return;
  p.add("A4",
        fmt::format("{} = {} elements, more than the {} (2^36, 256 GiB of fp32) one tensor may hold.", what,
                    fits ? fmt::format("{}", n) : std::string("more than 2^63"), kMaxTensorElements),
        fix);
}

}  // namespace

void size_rules(const Config& c, Problems& p) {
  const ModelConfig& m = c.model;
  // Sizes < 1 are V1's; the products below need them positive.
  if (m.hidden < 1 || m.heads < 1 || m.kv_heads < 1 || m.ffn < 1 || m.layers < 1 || m.head_dim < 0 ||
      c.train.seq_len < 2 || c.train.micro_batch < 1 || m.vocab < 0 || c.moe.num_experts < 0)
    return;
  const int64_t H = m.hidden, D = c.head_dim(), S = c.train.seq_len, B = c.train.micro_batch;
  const int64_t V = std::max(m.vocab, 1), E = c.moe.num_experts;
  const std::string smaller = "use smaller sizes: `foldmoe topology --config FILE --world N` estimates the memory.";
  product_rule(p, fmt::format("[model] vocab x hidden = {} x {}", V, H), {V, H}, smaller);
  product_rule(p, fmt::format("[model] hidden x heads x head_dim = {} x {} x {}", H, m.heads, D), {H, m.heads, D},
               smaller);
  product_rule(p, fmt::format("[model] hidden x ffn = {} x {}", H, m.ffn), {H, m.ffn}, smaller);
  if (E > 0) {
    product_rule(p, fmt::format("[moe] num_experts x expert ffn x hidden = {} x {} x {}", E, c.moe_ffn(), H),
                 {E, c.moe_ffn(), H}, smaller);
    if (c.moe.shared_expert_ffn_hidden_size > 0)
      product_rule(
          p,
          fmt::format("[moe] shared_expert_ffn_hidden_size x hidden = {} x {}", c.moe.shared_expert_ffn_hidden_size, H),
          {c.moe.shared_expert_ffn_hidden_size, H}, smaller);
    int64_t instances = 0;
    if (!checked_product({m.layers, E}, &instances) || instances > kMaxExpertInstances)
      p.add("A4",
            fmt::format("[model] layers x [moe] num_experts = {} x {} expert weight sets, more than {} (2^16).",
                        m.layers, E, kMaxExpertInstances),
            "use fewer experts per layer or fewer MoE layers ([moe] layer_freq).");
  }
  if (m.layers > kMaxLayers)
    p.add("A4", fmt::format("[model] layers = {} is more than {} (2^14) layers.", m.layers, kMaxLayers),
          "use fewer layers.");
  if (c.train.micro_batches > kMaxMicroBatches || c.train.global_batch > kMaxMicroBatches)
    p.add("A4",
          fmt::format("[train] micro_batches = {}, global_batch = {}: more than {} (2^20) micro-batches or sequences "
                      "per step.",
                      c.train.micro_batches, c.train.global_batch, kMaxMicroBatches),
          "use fewer micro-batches per step (a larger micro_batch, or more data-parallel ranks).");
  product_rule(p, fmt::format("the attention scores of one head, [train] seq_len^2 = {}^2", S), {S, S},
               "use a shorter seq_len (or context parallelism with a shorter seq_len per rank).");
  product_rule(p, fmt::format("one micro-batch's logits, micro_batch x seq_len x vocab = {} x {} x {}", B, S, V),
               {B, S, V}, "use a smaller micro_batch or seq_len (more micro_batches keep the batch).");
  product_rule(p, fmt::format("one micro-batch's activations, micro_batch x seq_len x hidden = {} x {} x {}", B, S, H),
               {B, S, H}, "use a smaller micro_batch or seq_len (more micro_batches keep the batch).");
  // A5: the model's context bounds training, generate and RL.
  if (m.max_seq_len < 2 || m.max_seq_len > kMaxSeqLen)
    p.add("V1", fmt::format("[model] max_seq_len = {} must be in [2, {}].", m.max_seq_len, kMaxSeqLen),
          "use e.g. max_seq_len = 65536 (the default).");
  else if (S > m.max_seq_len)
    p.add("A5",
          fmt::format("[train] seq_len = {} is longer than the model's context [model] max_seq_len = {}.", S,
                      m.max_seq_len),
          fmt::format("use seq_len <= {}, or raise [model] max_seq_len.", m.max_seq_len));
}

}  // namespace foldmoe
