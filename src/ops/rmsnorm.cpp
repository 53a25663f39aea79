#include "ops/rmsnorm.h"

#include <cmath>

namespace foldmoe::ops {

template <typename T>
void rmsnorm_forward(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t H, double eps) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * H;
    T* yr = y + r * H;
    T ss = 0;
    for (int64_t j = 0; j < H; ++j) ss += xr[j] * xr[j];
    const T rs = T(1) / std::sqrt(ss / T(H) + T(eps));
    rstd[r] = rs;
    for (int64_t j = 0; j < H; ++j) yr[j] = xr[j] * rs * w[j];
  }
}

// With r = rstd and c = Σ_k dy_k·w_k·x_k:  dx_j = r·w_j·dy_j − x_j·r³·c/H  (the second term is
// the gradient through r), and dw_j += dy_j·x_j·r.
template <typename T>
void rmsnorm_backward(const T* x, const T* w, const T* rstd, const T* dy, T* dx, T* dw, int64_t rows, int64_t H) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * H;
    const T* g = dy + r * H;
    T* dxr = dx + r * H;
    const T rs = rstd[r];
    T c = 0;
    for (int64_t j = 0; j < H; ++j) c += g[j] * w[j] * xr[j];
    const T k = rs * rs * rs * c / T(H);
    for (int64_t j = 0; j < H; ++j) {
      dxr[j] = rs * w[j] * g[j] - xr[j] * k;
      dw[j] += g[j] * xr[j] * rs;
    }
  }
}

template void rmsnorm_forward<float>(const float*, const float*, float*, float*, int64_t, int64_t, double);
template void rmsnorm_forward<double>(const double*, const double*, double*, double*, int64_t, int64_t, double);
template void rmsnorm_backward<float>(const float*, const float*, const float*, const float*, float*, float*,
                                      int64_t, int64_t);
template void rmsnorm_backward<double>(const double*, const double*, const double*, const double*, double*,
                                       double*, int64_t, int64_t);

}  // namespace foldmoe::ops
