// Lloyd-Max codebooks for TurboQuant: the optimal scalar quantizer for one coordinate of a
// uniformly random unit vector in `dim` dimensions, whose density is the sphere marginal
//   f(x) = (1 - x^2)^((dim - 3) / 2) / Z   on [-1, 1]   (variance exactly 1 / dim).
// Solved numerically the first time a (dim, bits) pair is asked for, then cached.
#pragma once

#include <cstdint>
#include <vector>

namespace kvpack::format {

// The sphere marginal's distribution, integrated accurately enough for the solver and tests:
// a cumulative table over [0, 1] (4096 cells, 5-point Gauss-Legendre each) plus a Gauss-Legendre
// integral inside the last cell; first moments are exact (x f(x) has a closed-form antiderivative).
class SphereMarginal {
 public:
  explicit SphereMarginal(int dim);  // dim >= 3
  int dim() const { return dim_; }
  double density(double x) const;
  double cdf(double x) const;  // P(X <= x)
  // Integral of x f(x) over [a, b].
  double first_moment(double a, double b) const;

 private:
  double unnormalized(double x) const;    // (1 - x^2)^alpha
  double mass_from_zero(double x) const;  // integral of unnormalized over [0, x], 0 <= x <= 1
  double integrate_cell(double a, double b) const;

  int dim_;
  double alpha_;             // (dim - 3) / 2
  double z_;                 // normalizer: integral of (1 - x^2)^alpha over [-1, 1]
  std::vector<double> cum_;  // [kCells + 1] unnormalized mass over [0, i / kCells]
};

// A symmetric Lloyd-Max codebook with 2^bits levels, in unit-vector units (about 1/sqrt(dim)).
struct Codebook {
  int dim = 0;
  int bits = 0;
  std::vector<float> centroids;   // [2^bits], ascending; centroids[L-1-i] == -centroids[i]
  std::vector<float> boundaries;  // [2^bits - 1], boundaries[i] = midpoint of centroids i, i+1
  double coord_mse = 0;           // E[(X - c(X))^2] for X ~ sphere marginal
  int iterations = 0;             // Lloyd iterations the solver took

  int levels() const { return 1 << bits; }
  // Expected ||u - u~||^2 for a unit vector u quantized coordinate-wise (no norm correction).
  double unit_mse() const { return coord_mse * dim; }
  // Index of the nearest centroid (ties go to the lower index).
  uint8_t quantize(float y) const {
    int i = 0;
    const int last = levels() - 1;
    while (i < last && y > boundaries[i]) ++i;
    return static_cast<uint8_t>(i);
  }
};

// Solves the Lloyd-Max conditions (centroid = conditional mean of its cell, boundary = midpoint)
// to a relative change below 1e-12. Throws Error for dim < 3 or bits outside 1..4.
Codebook solve_codebook(int dim, int bits);
// The cached codebook for (dim, bits); thread-safe, and the reference stays valid forever.
const Codebook& codebook(int dim, int bits);

}  // namespace kvpack::format
