// The Lloyd-Max codebooks against FACTS.md (values computed at d = 128, and the Gaussian limit
// the sphere marginal tends to), the optimality conditions, and the marginal itself.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <thread>

#include "base/error.h"
#include "format/codebook.h"

namespace kvpack::format {
namespace {

// Positive centroids x sqrt(d).
std::vector<double> scaled_positive(const Codebook& cb) {
  std::vector<double> out;
  const double s = std::sqrt(static_cast<double>(cb.dim));
  for (int i = cb.levels() / 2; i < cb.levels(); ++i) out.push_back(cb.centroids[i] * s);
  return out;
}

TEST(Codebook, MatchesFactsAtHeadDim128) {
  const auto two = scaled_positive(codebook(128, 2));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_NEAR(two[0], 0.4525, 5e-4);
  EXPECT_NEAR(two[1], 1.5052, 5e-4);
  const auto three = scaled_positive(codebook(128, 3));
  ASSERT_EQ(three.size(), 4u);
  EXPECT_NEAR(three[0], 0.2444, 5e-4);
  EXPECT_NEAR(three[1], 0.7533, 5e-4);
  EXPECT_NEAR(three[2], 1.3366, 5e-4);
  EXPECT_NEAR(three[3], 2.1315, 5e-4);
  const auto four = scaled_positive(codebook(128, 4));
  ASSERT_EQ(four.size(), 8u);
  EXPECT_NEAR(four[7], 2.6889, 5e-4);
}

// As d grows the marginal (scaled by sqrt(d)) tends to N(0, 1): the codebook and its MSE must
// approach the Gaussian Lloyd-Max values of FACTS.md's table.
TEST(Codebook, ApproachesGaussianLloydMaxForLargeDim) {
  const double gauss_top[] = {0.7979, 1.5104, 2.1519, 2.7326};
  const double gauss_mse[] = {0.3634, 0.1175, 0.03455, 0.00950};
  for (int b = 1; b <= 4; ++b) {
    const Codebook& cb = codebook(16384, b);
    EXPECT_NEAR(scaled_positive(cb).back(), gauss_top[b - 1], 2e-3) << b << " bits";
    EXPECT_NEAR(cb.unit_mse(), gauss_mse[b - 1], 0.01 * gauss_mse[b - 1]) << b << " bits";
  }
  // At d = 128 the MSE is within 2% of the Gaussian figure (the tails are lighter).
  for (int b = 1; b <= 4; ++b) {
    EXPECT_NEAR(codebook(128, b).unit_mse(), gauss_mse[b - 1], 0.02 * gauss_mse[b - 1]);
  }
}

// Lloyd-Max optimality: each centroid is the conditional mean of its cell, and the codebook is
// symmetric. Checked by independent numerical integration of the density.
TEST(Codebook, SatisfiesCentroidConditionAndSymmetry) {
  for (int d : {8, 80, 128, 256}) {
    for (int b = 1; b <= 4; ++b) {
      const Codebook& cb = codebook(d, b);
      ASSERT_EQ(static_cast<int>(cb.centroids.size()), cb.levels());
      const SphereMarginal f(d);
      for (int i = 0; i < cb.levels(); ++i) {
        EXPECT_FLOAT_EQ(cb.centroids[i], -cb.centroids[cb.levels() - 1 - i]);
        const double lo = i == 0 ? -1.0 : cb.boundaries[i - 1];
        const double hi = i == cb.levels() - 1 ? 1.0 : cb.boundaries[i];
        // Midpoint rule on a fine grid: independent of the solver's quadrature.
        const int n = 20000;
        double mass = 0, moment = 0;
        for (int k = 0; k < n; ++k) {
          const double x = lo + (hi - lo) * (k + 0.5) / n;
          mass += f.density(x);
          moment += x * f.density(x);
        }
        EXPECT_NEAR(moment / mass, cb.centroids[i], 1e-5 * std::fabs(cb.centroids[i]))
            << "d=" << d << " b=" << b << " i=" << i;
      }
    }
  }
}

TEST(SphereMarginal, IsNormalizedWithVarianceOneOverDim) {
  for (int d : {3, 8, 96, 256}) {
    const SphereMarginal f(d);
    EXPECT_NEAR(f.cdf(1.0), 1.0, 1e-12);
    EXPECT_NEAR(f.cdf(0.0), 0.5, 1e-12);
    EXPECT_NEAR(f.cdf(-0.3) + f.cdf(0.3), 1.0, 1e-12);
    const int n = 200000;
    double var = 0;
    for (int k = 0; k < n; ++k) {
      const double x = -1 + 2.0 * (k + 0.5) / n;
      var += x * x * f.density(x) * 2.0 / n;
    }
    EXPECT_NEAR(var, 1.0 / d, 1e-6 / d) << d;
    // E|X| = Gamma(d/2) / (sqrt(pi) Gamma((d+1)/2)) exactly; the first moment over [0, 1] is half
    // of it, and the 1-bit codebook's centroid is E[X | X > 0] = E|X|.
    const double mean_abs =
        std::exp(std::lgamma(d / 2.0) - std::lgamma((d + 1) / 2.0)) / std::sqrt(std::numbers::pi);
    EXPECT_NEAR(2 * f.first_moment(0, 1), mean_abs, 1e-9 * mean_abs) << d;
    if (d >= 8) {
      EXPECT_NEAR(codebook(d, 1).centroids[1], mean_abs, 1e-6 * mean_abs) << d;
    }
  }
}

TEST(Codebook, CachedAndThreadSafe) {
  const Codebook* seen[4] = {};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&seen, i] { seen[i] = &codebook(200, 3); });
  }
  for (auto& t : threads) t.join();
  for (int i = 1; i < 4; ++i) EXPECT_EQ(seen[i], seen[0]);
  EXPECT_EQ(&codebook(200, 3), seen[0]);
}

TEST(Codebook, RefusesBadArguments) {
  EXPECT_THROW(solve_codebook(128, 0), Error);
  EXPECT_THROW(solve_codebook(128, 5), Error);
  EXPECT_THROW(solve_codebook(2, 2), Error);
}

TEST(Codebook, QuantizePicksNearestCentroid) {
  const Codebook& cb = codebook(64, 3);
  for (int k = -400; k <= 400; ++k) {
    const float y = static_cast<float>(k) / 1000.0f;
    const int idx = cb.quantize(y);
    for (int j = 0; j < cb.levels(); ++j) {
      EXPECT_LE(std::fabs(y - cb.centroids[idx]), std::fabs(y - cb.centroids[j]) + 1e-7f);
    }
  }
}

}  // namespace
}  // namespace kvpack::format
