// Model FLOPs per token, the paper's accounting (docs/dense-parallel.md §11): forward + both backward GEMMs,
// active experts only, causal attention as half a square, router and norms ignored.
#pragma once

#include "config/config.h"
#include "ops/matmul_precision.h"

namespace foldmoe {

double model_flops_per_token(const Config& c);

// Peak GEMM throughput of this process (FLOP/s) at a matrix-product precision, measured by timing
// a large GEMM (sgemm, or the bf16 product of ops/matmul_precision.h); the denominator of MFU on CPU.
double measure_peak_flops(ops::MatmulPrecision precision = ops::MatmulPrecision::F32);

}  // namespace foldmoe
