// Input generators shared by the format tests: every format is checked on the same cases.
#pragma once

#include <string>
#include <vector>

#include "base/rng.h"

namespace kvpack::testing {

// x: [n][d] f32, row-major.
struct Rows {
  std::string name;
  int n = 0;
  int d = 0;
  std::vector<float> x;
};

inline Rows gaussian_rows(int n, int d, uint64_t seed, double sigma = 1.0) {
  Rows r{"gaussian", n, d, std::vector<float>(static_cast<size_t>(n) * d)};
  Rng rng(seed);
  for (auto& v : r.x) v = static_cast<float>(rng.normal() * sigma);
  return r;
}

// Gaussian with a few channels 10-30x larger, as real keys have.
inline Rows outlier_rows(int n, int d, uint64_t seed) {
  Rows r = gaussian_rows(n, d, seed);
  r.name = "outlier channels";
  Rng rng(seed ^ 0x55);
  const int n_out = d >= 16 ? 3 : 1;
  for (int o = 0; o < n_out; ++o) {
    const int ch = static_cast<int>(rng.below(static_cast<uint64_t>(d)));
    const float scale = static_cast<float>(10 + 20 * rng.uniform());
    for (int t = 0; t < n; ++t) r.x[static_cast<size_t>(t) * d + ch] *= scale;
  }
  return r;
}

inline Rows constant_rows(int n, int d, float value) {
  return Rows{"constant", n, d, std::vector<float>(static_cast<size_t>(n) * d, value)};
}

// The standard battery: Gaussian, outliers, zeros, a constant, a single token.
inline std::vector<Rows> standard_inputs(int n, int d, uint64_t seed) {
  std::vector<Rows> all;
  all.push_back(gaussian_rows(n, d, seed));
  all.push_back(outlier_rows(n, d, seed + 1));
  Rows z = constant_rows(n, d, 0.0f);
  z.name = "zeros";
  all.push_back(z);
  all.push_back(constant_rows(n, d, 0.75f));
  Rows one = gaussian_rows(1, d, seed + 2);
  one.name = "single token";
  all.push_back(one);
  return all;
}

}  // namespace kvpack::testing
