#include "ops/rope.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace foldmoe::ops {

namespace {

// Rotates every head of every row by sign·angle(pos, i) and scales by m. The angles are computed
// once per row in double (pos·inv_freq loses precision in float for large positions) and then
// applied to all heads, so the inner loop is a plain vectorisable multiply-add.
template <typename T>
void rotate(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, const RopeTable& table, double sign) {
  const int64_t half = D / 2;
  const std::vector<double>& inv_freq = table.inv_freq;
  const double m = table.attention_factor;
  std::vector<T> cs(static_cast<size_t>(half)), sn(static_cast<size_t>(half));
  for (int64_t r = 0; r < rows; ++r) {
    // Rows are n = s·B + b, so runs of rows share a position: reuse the previous row's angles
    // (the same values, without another `half` double cos/sin pairs).
    if (r == 0 || pos[r] != pos[r - 1])
      for (int64_t i = 0; i < half; ++i) {
        const double a = double(pos[r]) * inv_freq[size_t(i)];
        cs[size_t(i)] = T(m * std::cos(a));
        sn[size_t(i)] = T(m * sign * std::sin(a));
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

constexpr double kPi = 3.14159265358979323846;

// llama3: long wavelengths are interpolated by the factor, short ones kept, the band between
// blended linearly in L0/λ.
void llama3(std::vector<double>& inv_freq, const ModelConfig& m) {
  const double s = m.rope_scaling_factor, L0 = m.rope_original_max_position;
  const double low = m.rope_low_freq_factor, high = m.rope_high_freq_factor;
  const double low_freq_wavelen = L0 / low, high_freq_wavelen = L0 / high;
  for (double& f : inv_freq) {
    const double wavelen = 2 * kPi / f;
    if (wavelen > low_freq_wavelen) {
      f = f / s;
    } else if (!(wavelen < high_freq_wavelen)) {  // the medium band
      const double t = (L0 / wavelen - low) / (high - low);
      f = (1 - t) * f / s + t * f;
    }
  }
}

// yarn: dimensions below `low` keep their frequency (extrapolation), those above `high` are
// interpolated by the factor, with a linear ramp between.
double yarn(std::vector<double>& inv_freq, const ModelConfig& m, int64_t D) {
  const double s = m.rope_scaling_factor, L0 = m.rope_original_max_position, theta = m.rope_theta;
  const auto correction_dim = [&](double rotations) {
    return double(D) * std::log(L0 / (rotations * 2 * kPi)) / (2 * std::log(theta));
  };
  const double low = std::max(std::floor(correction_dim(m.rope_beta_fast)), 0.0);
  double high = std::min(std::ceil(correction_dim(m.rope_beta_slow)), double(D - 1));
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp
  for (size_t i = 0; i < inv_freq.size(); ++i) {
    const double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
    const double extrapolation = 1 - ramp;
    inv_freq[i] = inv_freq[i] / s * (1 - extrapolation) + inv_freq[i] * extrapolation;
  }
  if (m.rope_attention_factor) return *m.rope_attention_factor;
  return s <= 1 ? 1.0 : 0.1 * std::log(s) + 1.0;
}

}  // namespace

RopeTable rope_table(double theta, int64_t D) {
  RopeTable t;
  t.inv_freq.resize(size_t(D / 2));
  for (int64_t i = 0; i < D / 2; ++i) t.inv_freq[size_t(i)] = std::pow(theta, -2.0 * double(i) / double(D));
  return t;
}

RopeTable rope_table(const ModelConfig& m, int64_t D) {
  RopeTable t = rope_table(m.rope_theta, D);
  if (m.rope_scaling == "linear")
    for (double& f : t.inv_freq) f /= m.rope_scaling_factor;
  else if (m.rope_scaling == "llama3")
    llama3(t.inv_freq, m);
  else if (m.rope_scaling == "yarn")
    t.attention_factor = yarn(t.inv_freq, m, D);
  return t;
}

template <typename T>
void rope_forward(T* x, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, const RopeTable& table) {
  rotate(x, pos, rows, heads, D, table, 1.0);
}

// A rotation's adjoint is its inverse: rotate by −angle (the multiplier m is symmetric).
template <typename T>
void rope_backward(T* dx, const int32_t* pos, int64_t rows, int64_t heads, int64_t D, const RopeTable& table) {
  rotate(dx, pos, rows, heads, D, table, -1.0);
}

template void rope_forward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_forward<double>(double*, const int32_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_backward<float>(float*, const int32_t*, int64_t, int64_t, int64_t, const RopeTable&);
template void rope_backward<double>(double*, const int32_t*, int64_t, int64_t, int64_t, const RopeTable&);

}  // namespace foldmoe::ops
