#include "eval/policy_search.h"

#include <gtest/gtest.h>

#include "base/error.h"
#include "base/rng.h"

namespace kvpack::eval {
namespace {

using format::FormatId;

// Exhaustive search for the reference optimum.
double brute_force(const std::vector<std::vector<Option>>& items, double budget, size_t i = 0,
                   double cost = 0) {
  if (cost > budget + 1e-9) return 1e300;
  if (i == items.size()) return 0;
  double best = 1e300;
  for (const auto& o : items[i]) {
    best = std::min(best, o.error + brute_force(items, budget, i + 1, cost + o.bytes_per_token));
  }
  return best;
}

TEST(PolicySearch, FindsTheKnownOptimum) {
  // Two layers x (K, V). Layer 0's K is sensitive, so the optimum spends bits there.
  const std::vector<Option> sensitive = {{FormatId::f16, 16, 0.0}, {FormatId::bf16, 8, 10.0}};
  const std::vector<Option> robust = {{FormatId::f16, 16, 0.0}, {FormatId::bf16, 8, 0.5}};
  const std::vector<std::vector<Option>> items = {sensitive, robust, robust, robust};
  const SearchResult r = search_min_error(items, 40, 1);
  EXPECT_EQ(r.choice, (std::vector<int>{0, 1, 1, 1}));
  EXPECT_DOUBLE_EQ(r.bytes_per_token, 40);
  EXPECT_DOUBLE_EQ(r.error, 1.5);
}

TEST(PolicySearch, MatchesBruteForceOnRandomTables) {
  Rng rng(9);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<std::vector<Option>> items(6);
    for (auto& item : items) {
      for (int o = 0; o < 3; ++o) {
        item.push_back({FormatId::f16, static_cast<double>(1 + rng.below(8)), rng.uniform()});
      }
    }
    const double budget = static_cast<double>(12 + rng.below(20));
    const double want = brute_force(items, budget);
    if (want >= 1e300) {
      EXPECT_THROW(search_min_error(items, budget, 1), Error);
      continue;
    }
    const SearchResult r = search_min_error(items, budget, 1);
    EXPECT_NEAR(r.error, want, 1e-12);
    EXPECT_LE(r.bytes_per_token, budget);
  }
}

TEST(PolicySearch, NeverExceedsTheBudgetWithCoarseUnits) {
  const std::vector<std::vector<Option>> items(10,
                                               {{FormatId::f16, 3.3, 0}, {FormatId::bf16, 1.1, 1}});
  const SearchResult r = search_min_error(items, 20, 0.5);
  EXPECT_LE(r.bytes_per_token, 20);
}

TEST(PolicySearch, PolicyFromLayersRoundTrips) {
  const std::vector<FormatId> k = {FormatId::f32, FormatId::bf16, FormatId::bf16, FormatId::f32};
  const std::vector<FormatId> v = {FormatId::f16, FormatId::f16, FormatId::f16, FormatId::bf16};
  const format::KVPolicy p = policy_from_layers(k, v);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(p.layer(l, 4).k, k[static_cast<size_t>(l)]);
    EXPECT_EQ(p.layer(l, 4).v, v[static_cast<size_t>(l)]);
  }
  EXPECT_EQ(format::KVPolicy::parse(p.to_string()), p);
}

}  // namespace
}  // namespace kvpack::eval
