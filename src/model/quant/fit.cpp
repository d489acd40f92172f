#include "model/quant/fit.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "model/quant/codecs.h"

namespace kvpack::model::codec {
namespace {

// Relative steps around the scale that maps the largest |x| exactly onto the grid's end: the
// least-squares refit then settles each candidate's assignment.
constexpr int kSteps = 8;
constexpr float kStep = 0.03f;

float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

// Index of the grid value nearest t (the lower one on ties).
int nearest_level(float t, const int8_t* grid, int n_levels) {
  int lo = 0, hi = n_levels - 1;
  if (!(t > grid[lo])) return lo;
  if (!(t < grid[hi])) return hi;
  while (hi - lo > 1) {
    const int mid = (lo + hi) / 2;
    if (t < grid[mid]) {
      hi = mid;
    } else {
      lo = mid;
    }
  }
  return t - grid[lo] <= grid[hi] - t ? lo : hi;
}

// The least-squares scale for fixed levels v[j], and its squared error.
template <typename Level>
void refit(const float* x, int n, Level level_value, float* d, double* err) {
  double sxv = 0, svv = 0;
  for (int j = 0; j < n; ++j) {
    sxv += static_cast<double>(x[j]) * level_value(j);
    svv += static_cast<double>(level_value(j)) * level_value(j);
  }
  *d = svv > 0 ? static_cast<float>(sxv / svv) : 0.0f;
  double e = 0;
  for (int j = 0; j < n; ++j) {
    const double r = x[j] - static_cast<double>(*d) * level_value(j);
    e += r * r;
  }
  *err = e;
}

}  // namespace

void assign_grid(const float* x, int n, float d, const int8_t* grid, int n_levels, uint8_t* level) {
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  for (int j = 0; j < n; ++j)
    level[j] = static_cast<uint8_t>(nearest_level(x[j] * id, grid, n_levels));
}

float fit_grid(const float* x, int n, const int8_t* grid, int n_levels, uint8_t* level) {
  const float max = all_finite(x, n) ? signed_absmax(x, n) : 0.0f;
  if (max == 0.0f) {
    assign_grid(x, n, 0.0f, grid, n_levels, level);
    return 0.0f;
  }
  uint8_t trial[256];
  float best_d = 0.0f;
  double best_err = std::numeric_limits<double>::infinity();
  for (const int end : {int{grid[0]}, int{grid[n_levels - 1]}}) {
    for (int k = -kSteps; k <= kSteps; ++k) {
      const float d0 = max / (static_cast<float>(end) * (1.0f + kStep * static_cast<float>(k)));
      assign_grid(x, n, d0, grid, n_levels, trial);
      float d;
      double err;
      refit(
          x, n, [&](int j) { return static_cast<double>(grid[trial[j]]); }, &d, &err);
      if (err < best_err) {
        best_err = err;
        best_d = d;
        std::memcpy(level, trial, static_cast<size_t>(n));
      }
    }
  }
  return best_d;
}

float fit_signed(const float* x, int n, int lo, int hi, int8_t* l) {
  const float max = all_finite(x, n) ? signed_absmax(x, n) : 0.0f;
  std::fill(l, l + n, int8_t{0});
  if (max == 0.0f) return 0.0f;
  int8_t trial[256];
  float best_d = 0.0f;
  double best_err = std::numeric_limits<double>::infinity();
  for (const int end : {lo, hi}) {
    for (int k = -kSteps; k <= kSteps; ++k) {
      const float id = static_cast<float>(end) * (1.0f + kStep * static_cast<float>(k)) / max;
      for (int j = 0; j < n; ++j)
        trial[j] = static_cast<int8_t>(std::clamp(nearest(x[j] * id), lo, hi));
      float d;
      double err;
      refit(
          x, n, [&](int j) { return static_cast<double>(trial[j]); }, &d, &err);
      if (err < best_err) {
        best_err = err;
        best_d = d;
        std::memcpy(l, trial, static_cast<size_t>(n));
      }
    }
  }
  return best_d;
}

float fit_affine(const float* x, int n, int nmax, float* m, uint8_t* l) {
  std::fill(l, l + n, uint8_t{0});
  *m = 0.0f;
  if (!all_finite(x, n)) return 0.0f;
  float lo = std::min(0.0f, *std::min_element(x, x + n));
  const float hi = *std::max_element(x, x + n);
  if (hi <= lo) {  // every value the same non-positive number
    *m = -lo;
    return 0.0f;
  }
  uint8_t trial[256];
  float best_d = 0.0f;
  double best_err = std::numeric_limits<double>::infinity();
  for (int k = -kSteps; k <= kSteps; ++k) {
    const float id =
        (static_cast<float>(nmax) * (1.0f + kStep * static_cast<float>(k))) / (hi - lo);
    for (int j = 0; j < n; ++j)
      trial[j] = static_cast<uint8_t>(std::clamp(nearest((x[j] - lo) * id), 0, nmax));
    // Least squares for x ~ d * l + c (c = -m), then c clamped to at most 0.
    double sw = n, sl = 0, sll = 0, sx = 0, sxl = 0;
    for (int j = 0; j < n; ++j) {
      sl += trial[j];
      sll += static_cast<double>(trial[j]) * trial[j];
      sx += x[j];
      sxl += static_cast<double>(x[j]) * trial[j];
    }
    const double det = sw * sll - sl * sl;
    if (det <= 0) continue;
    double d = (sw * sxl - sx * sl) / det;
    double c = (sll * sx - sl * sxl) / det;
    if (c > 0) {
      c = 0;
      d = sxl / sll;
    }
    if (d < 0) continue;
    double err = 0;
    for (int j = 0; j < n; ++j) {
      const double r = x[j] - (d * trial[j] + c);
      err += r * r;
    }
    if (err < best_err) {
      best_err = err;
      best_d = static_cast<float>(d);
      *m = static_cast<float>(-c);
      std::memcpy(l, trial, static_cast<size_t>(n));
    }
  }
  return best_d;
}

}  // namespace kvpack::model::codec
