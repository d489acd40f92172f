// Per-layer K/V format search under a byte budget: a multiple-choice knapsack over measured
// (or estimated) per-layer errors, solved exactly by dynamic programming on costs rounded up to
// a small unit (so the result never exceeds the budget).
#pragma once

#include <string>
#include <vector>

#include "kvpack/format.h"

namespace kvpack::eval {

// One candidate for one layer-role: its cost and its measured error contribution.
struct Option {
  format::FormatId format;
  double bytes_per_token;  // this layer-role's bytes per token in this format
  double error;            // additive error estimate (e.g. attention-output MSE contribution)
};

// Items: one per layer-role, each a list of options (choose exactly one per item).
struct SearchResult {
  std::vector<int> choice;  // [item] index into that item's options
  double bytes_per_token = 0;
  double error = 0;
};

// Minimises total error subject to total bytes_per_token <= budget. Costs are rounded up to
// `resolution` bytes, so the DP is exact at that granularity and the budget is never exceeded.
// Default: the largest unit all costs are whole multiples of (exact; bytes per token always have
// one), else budget / 20000. Throws Error when even the cheapest options exceed the budget.
SearchResult search_min_error(const std::vector<std::vector<Option>>& items, double budget,
                              double resolution = 0);

// Measured per-layer, per-role sensitivity to each candidate format: the table the eval builds
// from attention fidelity (error = squared relative error of a layer's attention output with only
// that role in that format), and the prices of each format per layer and role.
struct SensitivityTable {
  int n_layers = 0;
  std::vector<format::FormatId> formats;  // candidates, one column each
  std::vector<double> k_bytes, v_bytes;   // [format] bytes per token per layer; < 0: cannot hold
  std::vector<std::vector<double>> k_error, v_error;  // [layer][format]; ignored where bytes < 0
};

// The search's items from a table: item 2l is layer l's K, item 2l + 1 its V; each lists the
// formats that can hold that role. Throws Error when a role has no candidate.
std::vector<std::vector<Option>> search_items(const SensitivityTable& table);

// The policy a search over search_items(table) chose (see policy_from_layers).
format::KVPolicy policy_from_search(const std::vector<std::vector<Option>>& items,
                                    const SearchResult& result);

// Sum of the table's errors for a policy (what the search minimises), NaN when the policy uses a
// format outside the table.
double predicted_error(const SensitivityTable& table, const format::KVPolicy& policy);

// Builds a KVPolicy from per-layer K and V formats: the most common pair of formats is the base,
// other layers become overrides grouped by format (shortest --kv text for typical results).
format::KVPolicy policy_from_layers(const std::vector<format::FormatId>& k,
                                    const std::vector<format::FormatId>& v);

}  // namespace kvpack::eval
