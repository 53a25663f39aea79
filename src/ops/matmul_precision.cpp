#include "ops/matmul_precision.h"

#include "core/check.h"

namespace foldmoe::ops {

namespace {
thread_local MatmulPrecision current = MatmulPrecision::F32;
}

MatmulPrecision matmul_precision() {
  return current;
}

const char* precision_name(MatmulPrecision p) {
  return p == MatmulPrecision::BF16 ? "bf16" : "fp32";
}

MatmulPrecision parse_precision(std::string_view name) {
  if (name == "fp32") return MatmulPrecision::F32;
  if (name == "bf16") return MatmulPrecision::BF16;
  FOLDMOE_CHECK(false, "unknown precision '{}' (fp32 | bf16)", name);
  return MatmulPrecision::F32;
}

MatmulPrecisionScope::MatmulPrecisionScope(MatmulPrecision p) : previous_(current) {
  current = p;
}
MatmulPrecisionScope::~MatmulPrecisionScope() {
  current = previous_;
}

}  // namespace foldmoe::ops
