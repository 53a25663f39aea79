// The precision of the matrix products (ops::gemm and everything built on it: linear layers,
// attention). F32: float operands. BF16 (mixed precision, `train.precision = "bf16"`): both
// operands of every product are rounded to bf16 and the products are accumulated in fp32 into an
// fp32 result, as a bf16 GEMM with an fp32 compute type does on a GPU. Everything that is not a
// matrix product (norm statistics, softmax, cross-entropy, router softmax/top-k, optimizer) stays
// fp32. docs/precision.md states the whole policy.
//
// The setting is per thread and scoped, like torch.autocast: the model's entry points open a
// scope from the run's config, and the code that must stay fp32 inside it (the router's logits)
// opens an F32 scope. Model code never asks which kernel runs.
#pragma once

#include <string_view>

namespace foldmoe::ops {

enum class MatmulPrecision { F32, BF16 };

MatmulPrecision matmul_precision();
const char* precision_name(MatmulPrecision p);
// "fp32" or "bf16" (the config's spelling); anything else is a caller error (validated earlier).
MatmulPrecision parse_precision(std::string_view name);

class MatmulPrecisionScope {
 public:
  explicit MatmulPrecisionScope(MatmulPrecision p);
  ~MatmulPrecisionScope();
  MatmulPrecisionScope(const MatmulPrecisionScope&) = delete;
  MatmulPrecisionScope& operator=(const MatmulPrecisionScope&) = delete;

 private:
  MatmulPrecision previous_;
};

}  // namespace foldmoe::ops
