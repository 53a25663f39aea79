#include "ops/rope.h"

#include <cmath>
#include <vector>

namespace foldmoe::ops {

namespace {

// Rotates every head of every row by sign·angle(pos, i). The angles are computed once per row in
// double (pos·theta^(−2i/D) loses precision in float for large positions) and then applied to
// all heads, so the inner loop is a plain vectorisable multiply-add.
template <typename T>
void rotate(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta, double sign) {
  const int64_t half = D / 2;
  std::vector<double> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) inv_freq[size_t(i)] = std::pow(theta, -2.0 * double(i) / double(D));
  std::vector<T> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows are n = s·B + b, so runs of rows share a position: reuse the previous row's angles
    // (the same values, without another `half` double cos/sin pairs).
    if (r == 0 || pos[r] != pos[r - 1])
      for (int64_t i = 0; i < half; ++i) {
        const double a = double(pos[r]) * inv_freq[size_t(i)];
        cs[size_t(i)] = T(std::cos(a));
        sn[size_t(i)] = T(sign * std::sin(a));
      }
    for (int64_t h = 0; h < heads; ++h) {
      T* lo = x + (r * heads + h) * D;
      T* hi = lo + half;
      for (int64_t i = 0; i < half; ++i) {
        const T a = lo[i], b = hi[i];
        lo[i] = a * cs[size_t(i)] - b * sn[size_t(i)];
        hi[i] = b * cs[size_t(i)] + a * sn[size_t(i)];
      }
    }
  }
}

}  // namespace

template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta) {
  rotate(x, pos, rows, heads, D, theta, 1.0);
}

// A rotation's adjoint is its inverse: rotate by −angle.
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, double theta) {
  rotate(dx, pos, rows, heads, D, theta, -1.0);
}

template void rope_forward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_forward<double>(double*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_backward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, double);
template void rope_backward<double>(double*, const int32_t*, int64_t, int64_t, int64_t, double);

}  // namespace foldmoe::ops
