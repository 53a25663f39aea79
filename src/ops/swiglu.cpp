#include "ops/swiglu.h"

#include <cmath>

#include "ops/fast_exp.h"

namespace foldmoe::ops {

namespace {
// Float goes through the vectorisable fast_sigmoid (std::exp kept the loops scalar); double keeps
// std::exp for the finite-difference tests.
inline float sigmoid(float a) { return fast_sigmoid(a); }
inline double sigmoid(double a) { return 1.0 / (1.0 + std::exp(-a)); }
}  // namespace

template <typename T>
void swiglu_forward(const T* ab, T* h, int64_t rows, int64_t F) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = ab + r * 2 * F;
    const T* b = a + F;
    T* o = h + r * F;
    for (int64_t j = 0; j < F; ++j) {
      const T s = sigmoid(a[j]);
      o[j] = a[j] * s * b[j];
    }
  }
}

template <typename T>
void swiglu_backward(const T* ab, const T* dh, T* dab, int64_t rows, int64_t F) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* a = ab + r * 2 * F;
    const T* b = a + F;
    const T* g = dh + r * F;
    T* da = dab + r * 2 * F;
    T* db = da + F;
    for (int64_t j = 0; j < F; ++j) {
      const T s = sigmoid(a[j]);
      const T silu = a[j] * s;
      da[j] = g[j] * b[j] * s * (T(1) + a[j] * (T(1) - s));
      db[j] = g[j] * silu;
    }
  }
}

void swiglu_forward_scaled(const float* ab, const float* p, float* h, float* hp, int64_t rows, int64_t F) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = ab + r * 2 * F;
    const float* b = a + F;
    float* o = h + r * F;
    float* op = hp + r * F;
    const float pr = p[r];
    for (int64_t j = 0; j < F; ++j) {
      const float v = a[j] * sigmoid(a[j]) * b[j];
      o[j] = v;
      op[j] = v * pr;
    }
  }
}

void swiglu_backward_scaled(const float* ab, const float* dhp, const float* p, float* dab, int64_t rows,
                            int64_t F) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* a = ab + r * 2 * F;
    const float* b = a + F;
    const float* gp = dhp + r * F;
    float* da = dab + r * 2 * F;
    float* db = da + F;
    const float pr = p[r];
    for (int64_t j = 0; j < F; ++j) {
      const float g = gp[j] * pr;
      const float s = sigmoid(a[j]);
      const float silu = a[j] * s;
      da[j] = g * b[j] * s * (1.0f + a[j] * (1.0f - s));
      db[j] = g * silu;
    }
  }
}

template void swiglu_forward<float>(const float*, float*, int64_t, int64_t);
template void swiglu_forward<double>(const double*, double*, int64_t, int64_t);
template void swiglu_backward<float>(const float*, const float*, float*, int64_t, int64_t);
template void swiglu_backward<double>(const double*, const double*, double*, int64_t, int64_t);

}  // namespace foldmoe::ops
