// Model FLOPs per token, the paper's accounting (docs/dense-parallel.md §11): forward + both backward GEMMs,
// active experts only, causal attention as half a square, router and norms ignored.
#pragma once

#include "config/config.h"

namespace foldmoe {

double model_flops_per_token(const Config& c);

// Peak fp32 GEMM throughput of this process (FLOP/s), measured by timing a large sgemm; the
// denominator of MFU on CPU.
double measure_peak_flops();

}  // namespace foldmoe
