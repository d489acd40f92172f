// The TurboQuant rotation: exactly orthogonal for every head dim (powers of two or not), and its
// output coordinates distributed like the sphere marginal even for structured inputs (spikes,
// outlier channels, constants), which is what lets one codebook serve every vector.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "base/error.h"
#include "every_target.h"
#include "format/codebook.h"
#include "format/rotation.h"
#include "inputs.h"

namespace kvpack::format {
namespace {

double norm(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += static_cast<double>(x) * x;
  return std::sqrt(s);
}

TEST(Rotation, PreservesNormsAndInvertsExactly) {
  for (int d : {8, 24, 64, 80, 96, 128, 248, 256, 7, 13}) {
    const Rotation rot(d, 0xabc + d);
    for (uint64_t seed = 0; seed < 20; ++seed) {
      const auto x = testing::outlier_rows(1, d, seed).x;
      const double nx = norm(x);
      std::vector<float> y(x.size()), back(x.size());
      rot.forward(x.data(), y.data());
      EXPECT_NEAR(norm(y), nx, 1e-6 * nx) << "d=" << d;
      rot.inverse(y.data(), back.data());
      for (int j = 0; j < d; ++j) {
        EXPECT_NEAR(back[j], x[j], 1e-6 * nx) << "d=" << d << " j=" << j;
      }
      rot.forward(y.data(), y.data());  // in place works too
      rot.inverse(y.data(), y.data());
      rot.inverse(y.data(), y.data());
      for (int j = 0; j < d; ++j) EXPECT_NEAR(y[j], x[j], 1e-6 * nx);
    }
  }
}

// The matrix itself: columns Pi e_j must be orthonormal.
TEST(Rotation, MatrixIsOrthogonal) {
  for (int d : {8, 64, 80, 96, 128, 256}) {
    const Rotation rot(d, 77);
    std::vector<float> m(static_cast<size_t>(d) * d);  // [d][d], row j = Pi e_j
    for (int j = 0; j < d; ++j) {
      std::vector<float> e(static_cast<size_t>(d), 0.0f);
      e[j] = 1.0f;
      rot.forward(e.data(), m.data() + static_cast<size_t>(j) * d);
    }
    double worst = 0;
    for (int a = 0; a < d; ++a) {
      for (int b = 0; b <= a; ++b) {
        double dot = 0;
        for (int k = 0; k < d; ++k) dot += static_cast<double>(m[a * d + k]) * m[b * d + k];
        worst = std::max(worst, std::fabs(dot - (a == b ? 1.0 : 0.0)));
      }
    }
    EXPECT_LT(worst, 1e-6) << "d=" << d;
  }
}

TEST(Rotation, DeterministicPerSeedAndDifferentAcrossSeeds) {
  const auto x = testing::gaussian_rows(1, 96, 3).x;
  std::vector<float> a(96), b(96), c(96);
  Rotation(96, 5).forward(x.data(), a.data());
  Rotation(96, 5).forward(x.data(), b.data());
  Rotation(96, 6).forward(x.data(), c.data());
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

// The SIMD transform does the reference's operations in the reference's order (hadamard.cpp),
// so it must match it bit for bit on every target, for every size (below, at and above the
// vector width) and for adversarial values: NaN and Inf propagate the same way, huge values
// overflow in the same butterflies, zeros keep their signs.
TEST(Rotation, SimdWalshHadamardIsBitExactWithTheReferenceOnEveryTarget) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  testing::on_every_target([&](const std::string&, bool) {
    for (int n = 1; n <= 4096; n *= 2) {
      for (int kind = 0; kind < 4; ++kind) {
        Rng rng(static_cast<uint64_t>(n) * 31 + kind);
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& v : x) v = static_cast<float>(rng.normal());
        if (kind == 1) {  // outliers near the float range: some butterflies overflow to Inf
          for (int i = 0; i < n; i += 3) x[i] *= 3e38f;
        } else if (kind == 2) {  // NaN, Inf, -Inf and signed zeros scattered
          const float specials[] = {nan, inf, -inf, 0.0f, -0.0f};
          for (int i = 0; i < n; i += 5) x[i] = specials[(i / 5) % 5];
        } else if (kind == 3) {  // denormals and tiny values
          for (auto& v : x) v *= 1e-39f;
        }
        std::vector<float> want = x, got = x;
        walsh_hadamard_reference(want.data(), n);
        walsh_hadamard(got.data(), n);
        for (int i = 0; i < n; ++i) {
          if (std::isnan(want[i])) {
            ASSERT_TRUE(std::isnan(got[i])) << "n " << n << " kind " << kind << " at " << i;
          } else {
            ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
                << "n " << n << " kind " << kind << " at " << i << ": " << got[i] << " vs "
                << want[i];
          }
        }
      }
    }
  });
}

TEST(Rotation, RefusesBadDims) {
  EXPECT_THROW(Rotation(0, 1), Error);
  EXPECT_THROW(Rotation(Rotation::kMaxDim + 1, 1), Error);
}

// Inputs a fixed rotation handles worst: all energy in one coordinate (first, or in the smallest
// block of a non-power-of-two dim), few outlier channels, or a constant row.
std::vector<std::vector<float>> structured_inputs(int d) {
  std::vector<std::vector<float>> in;
  for (int pos : {0, d / 2, d - 1}) {
    std::vector<float> e(static_cast<size_t>(d), 0.0f);
    e[pos] = 1.0f;
    in.push_back(e);
  }
  in.push_back(std::vector<float>(static_cast<size_t>(d), 0.75f));
  in.push_back(testing::outlier_rows(1, d, 9).x);
  return in;
}

// Over random seeds every output coordinate must carry |x|^2/d of the energy on average, as a
// coordinate of a uniformly random rotation does (the design goal of the Givens merge).
TEST(Rotation, EveryCoordinateGetsItsShareOfEnergy) {
  const int seeds = 2000;
  for (int d : {8, 24, 64, 80, 96, 128, 248, 256}) {
    const auto inputs = structured_inputs(d);
    for (size_t k = 0; k < inputs.size(); ++k) {
      const auto& x = inputs[k];
      const double n2 = norm(x) * norm(x);
      std::vector<double> energy(static_cast<size_t>(d), 0.0);  // [d] mean of d y_i^2 / |x|^2
      std::vector<float> y(x.size());
      for (int s = 0; s < seeds; ++s) {
        Rotation(d, 1000 + s).forward(x.data(), y.data());
        for (int i = 0; i < d; ++i) energy[i] += d * static_cast<double>(y[i]) * y[i] / n2 / seeds;
      }
      // d y_i^2 / |x|^2 has variance about 2, so the mean's standard error is sqrt(2/seeds).
      const double tol = 5 * std::sqrt(2.0 / seeds);
      for (int i = 0; i < d; ++i) {
        ASSERT_NEAR(energy[i], 1.0, tol) << "d=" << d << " input " << k << " coordinate " << i;
      }
    }
  }
}

// Distribution, not just variance: pooled scaled coordinates sqrt(d) y_i / |x| must have the
// sphere marginal's fourth moment 3d/(d+2) (one round would give exactly 1 for a spike), and for
// outlier-channel rows (continuous) the marginal's CDF within a Kolmogorov distance of 0.02.
TEST(Rotation, CoordinatesFollowTheSphereMarginal) {
  const int seeds = 2000;
  for (int d : {64, 80, 96, 128, 256}) {
    const auto inputs = structured_inputs(d);
    const SphereMarginal marginal(d);
    for (size_t k = 0; k < inputs.size(); ++k) {
      const auto& x = inputs[k];
      std::vector<double> z;  // pooled sqrt(d) y_i / |x|
      z.reserve(static_cast<size_t>(seeds) * d);
      std::vector<float> y(x.size());
      const double scale = std::sqrt(static_cast<double>(d)) / norm(x);
      for (int s = 0; s < seeds; ++s) {
        Rotation(d, 5000 + s).forward(x.data(), y.data());
        for (float v : y) z.push_back(scale * v);
      }
      double m4 = 0;
      for (double v : z) m4 += v * v * v * v / static_cast<double>(z.size());
      EXPECT_NEAR(m4, 3.0 * d / (d + 2), 0.15) << "d=" << d << " input " << k;
      if (k != inputs.size() - 1) continue;  // spikes and constants take lattice values
      std::sort(z.begin(), z.end());
      double ks = 0;
      for (size_t i = 0; i < z.size(); i += 7) {
        const double f = marginal.cdf(z[i] / std::sqrt(static_cast<double>(d)));
        ks = std::max(ks, std::fabs(f - (i + 0.5) / static_cast<double>(z.size())));
      }
      EXPECT_LT(ks, 0.02) << "d=" << d;
    }
  }
}

}  // namespace
}  // namespace kvpack::format
