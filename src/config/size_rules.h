// Rules A4 and A5: sizes whose products overflow, or that no machine could hold, are refused
// before anything is registered or allocated (otherwise `hidden = 100000000` ends in
// std::bad_alloc, `seq_len = 10000000` overflows the attention scores and `num_experts = 100000`
// spends minutes registering parameters). Products are formed in int64 with overflow checks.
#pragma once

#include <cstdint>

#include "config/config.h"
#include "config/problems.h"

namespace foldmoe {

// Largest number of elements of one tensor (a weight, a micro-batch's activations, the attention
// scores of one head): 2^36 fp32 values = 256 GiB.
inline constexpr int64_t kMaxTensorElements = int64_t(1) << 36;
// Largest number of expert weight sets over all layers (layers x num_experts): registering them
// stays well under a second.
inline constexpr int64_t kMaxExpertInstances = int64_t(1) << 16;
// Most layers, and most micro-batches (or sequences of a global batch) per step: the pipeline
// schedule and the memory estimate walk over each.
inline constexpr int64_t kMaxLayers = int64_t(1) << 14;
inline constexpr int64_t kMaxMicroBatches = int64_t(1) << 20;
// Largest [model] max_seq_len.
inline constexpr int64_t kMaxSeqLen = int64_t(1) << 20;

// a · b · c ... in int64 into *out; false when a factor is negative or the product overflows.
bool checked_product(std::initializer_list<int64_t> factors, int64_t* out);

void size_rules(const Config& c, Problems& p);

}  // namespace foldmoe
