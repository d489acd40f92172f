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

TEST(PolicySearch, ExactFitIsFoundWithTheDefaultResolution) {
  // 14 / 20000 is not a divisor of these costs: rounding each cost up to it would push the
  // exact fit (4 + 4 + 2 + 2 + 2 bytes) past the budget. The default unit is their common one.
  const std::vector<std::vector<Option>> items = {{{FormatId::q8, 4, 0.1}, {FormatId::q4, 2, 5}},
                                                  {{FormatId::q8, 4, 0.01}, {FormatId::q4, 2, 0.2}},
                                                  {{FormatId::q4, 2, 0.1}},
                                                  {{FormatId::q4, 2, 0.1}},
                                                  {{FormatId::q4, 2, 0.1}}};
  const SearchResult r = search_min_error(items, 14);
  EXPECT_DOUBLE_EQ(r.bytes_per_token, 14);
  EXPECT_NEAR(r.error, 0.41, 1e-12);
  // Fractional bytes per token (multiples of 1/4) are exact too.
  const std::vector<std::vector<Option>> frac = {{{FormatId::q8, 2.25, 0}, {FormatId::q4, 1.5, 1}},
                                                 {{FormatId::q8, 2.25, 0}, {FormatId::q4, 1.5, 1}}};
  EXPECT_DOUBLE_EQ(search_min_error(frac, 3.75).error, 1);
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

namespace kvpack::eval {
namespace {

// Three layers; layer 0's keys are sensitive; kivi2 holds keys only.
SensitivityTable synthetic_table() {
  SensitivityTable t;
  t.n_layers = 3;
  t.formats = {FormatId::f16, FormatId::q8, FormatId::q4, FormatId::kivi2};
  t.k_bytes = {8, 4, 2, 1};
  t.v_bytes = {8, 4, 2, -1};
  t.k_error = {{0, 0.1, 5, 9}, {0, 0.01, 0.2, 0.8}, {0, 0.01, 0.2, 0.8}};
  t.v_error = {{0, 0.001, 0.1, 0}, {0, 0.001, 0.1, 0}, {0, 0.001, 0.1, 0}};
  return t;
}

TEST(PolicySearch, SensitivityTableToPolicy) {
  const SensitivityTable t = synthetic_table();
  const std::vector<std::vector<Option>> items = search_items(t);
  ASSERT_EQ(items.size(), 6u);
  EXPECT_EQ(items[0].size(), 4u);  // K: every format
  EXPECT_EQ(items[1].size(), 3u);  // V: kivi2 cannot hold values
  // 14 bytes: q8 keys where they matter, q4 elsewhere, q4 values (error 0.1 + 2 x 0.2 + 3 x 0.1).
  const SearchResult r = search_min_error(items, 14);
  EXPECT_NEAR(r.error, 0.8, 1e-12);
  EXPECT_DOUBLE_EQ(r.bytes_per_token, 14);
  EXPECT_NEAR(r.error, brute_force(items, 14), 1e-12);
  const format::KVPolicy p = policy_from_search(items, r);
  EXPECT_EQ(p, format::KVPolicy::parse("k=q4,v=q4;0:k=q8"));
  EXPECT_NEAR(predicted_error(t, p), r.error, 1e-12);
  // 11 bytes: layer 0's keys get q4 (q8 no longer fits), one other layer's keys drop to kivi2.
  const SearchResult tight = search_min_error(items, 11);
  EXPECT_NEAR(tight.error, 5 + 0.2 + 0.8 + 3 * 0.1, 1e-12);
  EXPECT_NEAR(tight.error, brute_force(items, 11), 1e-12);
  EXPECT_EQ(policy_from_search(items, tight).layer(0, 3).k, FormatId::q4);
  EXPECT_TRUE(std::isnan(predicted_error(t, format::KVPolicy(FormatId::q8, FormatId::kivi2))));
  EXPECT_TRUE(std::isnan(predicted_error(t, format::KVPolicy(FormatId::turbo4, FormatId::q8))));
}

TEST(PolicySearch, RoleWithoutCandidateIsAnError) {
  SensitivityTable t = synthetic_table();
  t.v_bytes = {-1, -1, -1, -1};
  EXPECT_THROW(search_items(t), Error);
}

}  // namespace
}  // namespace kvpack::eval
