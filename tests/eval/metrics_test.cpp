#include "eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

namespace kvpack::eval {
namespace {

TEST(Metrics, KlDivergenceByHand) {
  // P = (0.5, 0.5), Q = (0.9, 0.1): KL = 0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = 0.5108256...
  const std::vector<double> lp = {std::log(0.5), std::log(0.5)};
  const std::vector<double> lq = {std::log(0.9), std::log(0.1)};
  EXPECT_NEAR(kl_divergence(lp, lq), 0.5 * std::log(0.5 / 0.9) + 0.5 * std::log(5.0), 1e-12);
  EXPECT_EQ(kl_divergence(lp, lp), 0.0);
}

TEST(Metrics, LogSoftmaxAndNll) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  std::vector<double> lp(3);
  log_softmax(logits, lp);
  const double z = std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0));
  EXPECT_NEAR(lp[0], 1 - z, 1e-12);
  EXPECT_NEAR(nll(lp, 2), z - 3, 1e-12);
  // Shift invariance, and no overflow for huge logits.
  const std::vector<float> big = {1001.0f, 1002.0f, 1003.0f};
  std::vector<double> lb(3);
  log_softmax(big, lb);
  for (int i = 0; i < 3; ++i)
    EXPECT_NEAR(lb[static_cast<size_t>(i)], lp[static_cast<size_t>(i)], 1e-9);
}

TEST(Metrics, SummaryStatistics) {
  Summary s;
  for (int i = 1; i <= 100; ++i) s.add(i);
  EXPECT_DOUBLE_EQ(s.mean(), 50.5);
  EXPECT_NEAR(s.percentile(99), 99.01, 1e-9);
  EXPECT_DOUBLE_EQ(s.percentile(0), 1);
  EXPECT_DOUBLE_EQ(s.max(), 100);
  EXPECT_NEAR(s.stderr_of_mean(), std::sqrt(841.6666666666666 / 100), 1e-9);
}

TEST(Metrics, TopKOverlapByHand) {
  const std::vector<float> a = {0.1f, 0.5f, 0.3f, 0.9f, 0.0f};
  const std::vector<float> b = {0.9f, 0.5f, 0.3f, 0.1f, 0.0f};
  EXPECT_EQ(top_k_indices(a, 2), (std::vector<int>{3, 1}));
  EXPECT_DOUBLE_EQ(top_k_overlap(a, b, 2), 0.5);  // {3,1} vs {0,1}
  EXPECT_DOUBLE_EQ(top_k_overlap(a, b, 3), 2.0 / 3);
  EXPECT_DOUBLE_EQ(top_k_overlap(a, a, 4), 1.0);
  // Ties resolve to the lower index.
  EXPECT_EQ(top_k_indices(std::vector<float>{1, 1, 1}, 2), (std::vector<int>{0, 1}));
}

TEST(Metrics, RelativeErrorAndCosine) {
  const std::vector<float> b = {3, 4};
  const std::vector<float> a = {3, 5};
  EXPECT_NEAR(relative_error(a, b), 1.0 / 5, 1e-12);
  EXPECT_NEAR(cosine(a, b), (9 + 20) / (5 * std::sqrt(34.0)), 1e-12);
  const std::vector<float> z = {0, 0};
  EXPECT_EQ(relative_error(z, z), 0);
  EXPECT_EQ(cosine(z, z), 1);
  EXPECT_TRUE(std::isinf(relative_error(a, z)));
}

}  // namespace
}  // namespace kvpack::eval
