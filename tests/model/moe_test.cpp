// Expert routing against a direct evaluation of its definition (softmax over every expert, the k
// most probable, renormalised), including ties and a broken router.
#include "model/moe.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "base/rng.h"

namespace kvpack::model {
namespace {

TEST(Moe, RoutesToTheMostProbableExpertsRenormalised) {
  Rng rng(11);
  for (int n : {2, 8, 64, 128}) {
    for (int k : {1, 2, 8}) {
      if (k > n) continue;
      std::vector<float> logits(static_cast<size_t>(n));
      for (float& x : logits) x = static_cast<float>(rng.normal() * 3);
      std::vector<int32_t> ids(static_cast<size_t>(k));
      std::vector<float> w(static_cast<size_t>(k));
      route_experts(logits.data(), n, k, ids.data(), w.data());
      // Expected: the k largest logits (softmax is monotonic), weights exp(l_i) / sum over them.
      std::vector<int32_t> order(static_cast<size_t>(n));
      for (int i = 0; i < n; ++i) order[static_cast<size_t>(i)] = i;
      std::stable_sort(order.begin(), order.end(),
                       [&](int a, int b) { return logits[a] > logits[b]; });
      double sum = 0;
      for (int j = 0; j < k; ++j) sum += std::exp(static_cast<double>(logits[order[j]]));
      double total = 0;
      for (int j = 0; j < k; ++j) {
        ASSERT_EQ(ids[j], order[j]) << n << " " << k << " " << j;
        const double want = std::exp(static_cast<double>(logits[order[j]])) / sum;
        // softmax (n + 6 + |l - max|) u, then a sum of k and a division: well inside 1e-5.
        EXPECT_NEAR(w[j], want, 1e-5 * want) << n << " " << k << " " << j;
        total += w[j];
      }
      EXPECT_NEAR(total, 1.0, 1e-6);
    }
  }
}

TEST(Moe, TiesGoToTheLowerIdAndBrokenRoutersShow) {
  const float logits[4] = {1.0f, 3.0f, 3.0f, 3.0f};
  int32_t ids[2];
  float w[2];
  route_experts(logits, 4, 2, ids, w);
  EXPECT_EQ(ids[0], 1);
  EXPECT_EQ(ids[1], 2);
  EXPECT_FLOAT_EQ(w[0], 0.5f);
  EXPECT_FLOAT_EQ(w[1], 0.5f);
  const float nan[3] = {1.0f, std::numeric_limits<float>::quiet_NaN(), 0.0f};
  route_experts(nan, 3, 2, ids, w);
  EXPECT_TRUE(std::isnan(w[0]) && std::isnan(w[1]));
}

}  // namespace
}  // namespace kvpack::model
