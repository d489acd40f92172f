// `kvpack plan` internals shared by its two reports: one model (plan.cpp) and the overview of the
// built-in presets that runs with no arguments (plan_overview.cpp).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvpack/format.h"
#include "kvpack/plan.h"

namespace kvpack::cli {

// Settings both reports share, after flag parsing.
struct PlanSettings {
  std::vector<format::KVPolicy> policies;
  std::vector<plan::Budget> budgets;  // the overview's columns; at most one for a model
  int page_tokens = 32;
  double weight_bits = plan::kDefaultWeightBits;
  uint64_t overhead = plan::kDefaultOverhead;
  bool json = false;
  bool markdown = false;
};

// 147456 -> "147,456".
std::string group_digits(uint64_t n);
// Token counts for tables: 77344 -> "75.5k", 145408 -> "142k" (k = 1024 tokens).
std::string short_tokens(int64_t n);
// "f16/f16" for a uniform policy, else its --kv spec.
std::string policy_label(const format::KVPolicy& policy);
// The formula block printed above the overview and under --help.
std::string formula_text(const PlanSettings& s);

void print_overview(const PlanSettings& s);

}  // namespace kvpack::cli
