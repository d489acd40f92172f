// Lloyd-Max solver for the sphere marginal; see codebook.h.
#include "format/codebook.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>

#include "base/error.h"

namespace kvpack::format {
namespace {

constexpr int kCells = 4096;
constexpr int kMaxIterations = 200000;
constexpr double kTolerance = 1e-12;

// 5-point Gauss-Legendre on [-1, 1]: exact for polynomials up to degree 9, so over one cell of
// width 1/4096 the smooth density is integrated to double precision.
constexpr double kNodes[5] = {0.0, -0.5384693101056831, 0.5384693101056831, -0.9061798459386640,
                              0.9061798459386640};
constexpr double kWeights[5] = {0.5688888888888889, 0.4786286704993665, 0.4786286704993665,
                                0.2369268850561891, 0.2369268850561891};

}  // namespace

SphereMarginal::SphereMarginal(int dim) : dim_(dim), alpha_((dim - 3) / 2.0) {
  if (dim < 3) fail("sphere marginal needs dim >= 3, got {}", dim);
  cum_.resize(kCells + 1);
  cum_[0] = 0;
  for (int i = 0; i < kCells; ++i) {
    cum_[i + 1] = cum_[i] + integrate_cell(static_cast<double>(i) / kCells,
                                           static_cast<double>(i + 1) / kCells);
  }
  z_ = 2 * cum_[kCells];
}

double SphereMarginal::unnormalized(double x) const {
  const double u = 1 - x * x;
  return u <= 0 ? 0.0 : std::pow(u, alpha_);
}

double SphereMarginal::integrate_cell(double a, double b) const {
  const double mid = 0.5 * (a + b), half = 0.5 * (b - a);
  double s = 0;
  for (int k = 0; k < 5; ++k) s += kWeights[k] * unnormalized(mid + half * kNodes[k]);
  return s * half;
}

double SphereMarginal::mass_from_zero(double x) const {
  const int cell = std::min(static_cast<int>(x * kCells), kCells - 1);
  return cum_[cell] + integrate_cell(static_cast<double>(cell) / kCells, x);
}

double SphereMarginal::density(double x) const {
  return unnormalized(x) / z_;
}

double SphereMarginal::cdf(double x) const {
  if (x <= -1) return 0;
  if (x >= 1) return 1;
  const double half = mass_from_zero(std::fabs(x)) / z_;
  return x >= 0 ? 0.5 + half : 0.5 - half;
}

double SphereMarginal::first_moment(double a, double b) const {
  // d/dx [-(1 - x^2)^(alpha + 1) / (2 (alpha + 1))] = x (1 - x^2)^alpha.
  const auto anti = [&](double x) {
    const double u = std::max(0.0, 1 - x * x);
    return -std::pow(u, alpha_ + 1) / (2 * (alpha_ + 1));
  };
  return (anti(b) - anti(a)) / z_;
}

Codebook solve_codebook(int dim, int bits) {
  if (bits < 1 || bits > 4) fail("TurboQuant codebook: bits must be 1..4, got {}", bits);
  if (dim < 3) fail("TurboQuant codebook: dim must be >= 3, got {}", dim);
  const SphereMarginal f(dim);
  const int m = 1 << (bits - 1);  // centroids on the positive half; the rest mirror them
  const double sigma = 1.0 / std::sqrt(static_cast<double>(dim));
  std::vector<double> c(m), t(m + 1);  // t: cell edges 0 = t_0 < ... < t_m = 1
  for (int i = 0; i < m; ++i) c[i] = sigma * 2.8 * (i + 0.5) / m;
  int it = 0;
  for (; it < kMaxIterations; ++it) {
    t[0] = 0;
    t[m] = 1;
    for (int i = 1; i < m; ++i) t[i] = 0.5 * (c[i - 1] + c[i]);
    double change = 0;
    for (int i = 0; i < m; ++i) {
      const double p = f.cdf(t[i + 1]) - f.cdf(t[i]);
      // An empty cell cannot occur for this log-concave density with the start above; keep
      // the old centroid rather than divide by zero if rounding ever made it so.
      const double next = p > 0 ? f.first_moment(t[i], t[i + 1]) / p : c[i];
      change = std::max(change, std::fabs(next - c[i]));
      c[i] = next;
    }
    if (change < kTolerance * sigma) break;
  }
  Codebook cb;
  cb.dim = dim;
  cb.bits = bits;
  cb.iterations = it;
  // E[X^2] = 1/dim exactly; subtracting the centroids' energy is the MSE at a Lloyd-Max optimum.
  double kept = 0;
  for (int i = 0; i < m; ++i) {
    const double lo = i == 0 ? 0.0 : 0.5 * (c[i - 1] + c[i]);
    const double hi = i == m - 1 ? 1.0 : 0.5 * (c[i] + c[i + 1]);
    kept += 2 * (f.cdf(hi) - f.cdf(lo)) * c[i] * c[i];
  }
  cb.coord_mse = 1.0 / dim - kept;
  for (int i = m - 1; i >= 0; --i) cb.centroids.push_back(static_cast<float>(-c[i]));
  for (int i = 0; i < m; ++i) cb.centroids.push_back(static_cast<float>(c[i]));
  for (int i = 0; i + 1 < cb.levels(); ++i) {
    cb.boundaries.push_back(0.5f * (cb.centroids[i] + cb.centroids[i + 1]));
  }
  return cb;
}

const Codebook& codebook(int dim, int bits) {
  static std::mutex mu;
  static std::map<std::pair<int, int>, std::unique_ptr<const Codebook>> cache;
  const std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{dim, bits}];
  if (!slot) slot = std::make_unique<const Codebook>(solve_codebook(dim, bits));
  return *slot;
}

}  // namespace kvpack::format
