#include "model/rope.h"

#include <gtest/gtest.h>

#include <cmath>

#include "base/error.h"
#include "base/rng.h"

namespace kvpack::model {
namespace {

std::vector<float> random_vec(int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<float>(rng.normal());
  return v;
}

double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

TEST(Rope, PositionZeroIsIdentityAndNormIsKept) {
  for (auto ordering : {RopeOrdering::interleaved, RopeOrdering::neox}) {
    Rope rope({.ordering = ordering, .n_dims = 64});
    auto x = random_vec(2 * 64, 1);
    auto y = x;
    rope.apply(y.data(), 2, 64, 0);
    for (size_t i = 0; i < x.size(); ++i) EXPECT_FLOAT_EQ(y[i], x[i]);
    rope.apply(y.data(), 2, 64, 12345);
    EXPECT_NEAR(dot(y, y), dot(x, x), 1e-4 * dot(x, x));
  }
}

TEST(Rope, HandComputedAngles) {
  Rope rope({.n_dims = 8, .freq_base = 10000});
  double c, s;
  rope.pair_cos_sin(1, 0, &c, &s);
  EXPECT_NEAR(c, std::cos(1.0), 1e-12);
  rope.pair_cos_sin(3, 1, &c, &s);  // theta = 3 * 10000^(-2/8)
  EXPECT_NEAR(s, std::sin(3 * std::pow(10000.0, -0.25)), 1e-12);
  // Interleaved rotates (x0, x1) as a complex number.
  std::vector<float> x = {1, 0, 0, 0, 0, 0, 0, 0};
  rope.apply(x.data(), 1, 8, 1);
  EXPECT_NEAR(x[0], std::cos(1.0), 1e-6);
  EXPECT_NEAR(x[1], std::sin(1.0), 1e-6);
}

TEST(Rope, NeoxEqualsInterleavedOnPermutedDims) {
  const int d = 16;
  Rope inter({.ordering = RopeOrdering::interleaved, .n_dims = d});
  Rope neox({.ordering = RopeOrdering::neox, .n_dims = d});
  auto x = random_vec(d, 2);
  std::vector<float> perm(d);  // neox layout: pair i is (i, i + d/2)
  for (int i = 0; i < d / 2; ++i) {
    perm[static_cast<size_t>(i)] = x[static_cast<size_t>(2 * i)];
    perm[static_cast<size_t>(i + d / 2)] = x[static_cast<size_t>(2 * i + 1)];
  }
  inter.apply(x.data(), 1, d, 77);
  neox.apply(perm.data(), 1, d, 77);
  for (int i = 0; i < d / 2; ++i) {
    EXPECT_NEAR(perm[static_cast<size_t>(i)], x[static_cast<size_t>(2 * i)], 1e-5);
    EXPECT_NEAR(perm[static_cast<size_t>(i + d / 2)], x[static_cast<size_t>(2 * i + 1)], 1e-5);
  }
}

// Scores depend only on the distance between positions, for every scaling kind.
TEST(Rope, DotProductDependsOnlyOnRelativePosition) {
  std::vector<RopeConfig> configs = {
      {.n_dims = 32},
      {.ordering = RopeOrdering::neox,
       .n_dims = 32,
       .scaling = RopeScaling::linear,
       .scale_factor = 4},
      {.ordering = RopeOrdering::neox,
       .n_dims = 32,
       .freq_base = 1e6,
       .scaling = RopeScaling::yarn,
       .scale_factor = 4,
       .original_context = 4096},
  };
  for (const auto& cfg : configs) {
    Rope rope(cfg);
    const auto q = random_vec(32, 3), k = random_vec(32, 4);
    auto q1 = q, k1 = k, q2 = q, k2 = k;
    rope.apply(q1.data(), 1, 32, 100);
    rope.apply(k1.data(), 1, 32, 40);
    rope.apply(q2.data(), 1, 32, 5060);
    rope.apply(k2.data(), 1, 32, 5000);
    EXPECT_NEAR(dot(q1, k1), dot(q2, k2), 1e-3);
  }
}

TEST(Rope, LinearScalingDividesPosition) {
  Rope plain({.n_dims = 16});
  Rope lin({.n_dims = 16, .scaling = RopeScaling::linear, .scale_factor = 4});
  for (int i = 0; i < 8; ++i) {
    double c1, s1, c2, s2;
    plain.pair_cos_sin(10, i, &c1, &s1);
    lin.pair_cos_sin(40, i, &c2, &s2);
    EXPECT_NEAR(c1, c2, 1e-9);
    EXPECT_NEAR(s1, s2, 1e-9);
  }
}

TEST(Rope, YarnKeepsHighFrequenciesAndInterpolatesLowOnes) {
  const RopeConfig base{.ordering = RopeOrdering::neox, .n_dims = 128, .freq_base = 10000};
  RopeConfig y = base;
  y.scaling = RopeScaling::yarn;
  y.scale_factor = 8;
  y.original_context = 4096;
  Rope plain(base), yarn(y);
  const double mscale = 1 + 0.1 * std::log(8.0);
  double c1, s1, c2, s2;
  plain.pair_cos_sin(1000, 0, &c1, &s1);  // fastest pair: extrapolated (unchanged angle)
  yarn.pair_cos_sin(1000, 0, &c2, &s2);
  EXPECT_NEAR(std::atan2(s2, c2), std::atan2(s1, c1), 1e-9);
  EXPECT_NEAR(std::hypot(c2, s2), mscale, 1e-9);
  plain.pair_cos_sin(800, 63, &c1, &s1);  // slowest pair: interpolated (position / 8)
  yarn.pair_cos_sin(6400, 63, &c2, &s2);
  EXPECT_NEAR(std::atan2(s2, c2), std::atan2(s1, c1), 1e-9);
}

TEST(Rope, FrequencyFactorsDivideFrequencies) {
  RopeConfig cfg{.n_dims = 8};
  cfg.freq_factors = {1, 2, 4, 8};
  Rope f(cfg), plain({.n_dims = 8});
  double c1, s1, c2, s2;
  plain.pair_cos_sin(10, 2, &c1, &s1);
  f.pair_cos_sin(40, 2, &c2, &s2);
  EXPECT_NEAR(c1, c2, 1e-9);
  cfg.freq_factors = {1, 2};
  EXPECT_THROW(Rope{cfg}, Error);
}

TEST(Rope, PartialRotaryLeavesTheRestAlone) {
  Rope rope({.n_dims = 8});
  auto x = random_vec(16, 5);
  auto y = x;
  rope.apply(y.data(), 1, 16, 9);
  for (int i = 8; i < 16; ++i) EXPECT_EQ(y[static_cast<size_t>(i)], x[static_cast<size_t>(i)]);
}

}  // namespace
}  // namespace kvpack::model
