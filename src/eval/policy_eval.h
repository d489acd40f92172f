// `kvpack eval policy`: choose per-layer K and V formats within a budget from measured attention
// sensitivity, then check the choice by KL divergence against the uniform policies that fit the
// same budget, on text the sensitivity was not measured on.
//
//   1. calibration: capture q/k/v over one chunk of the text (the first chunk after the
//      confirmation chunks) and measure, per layer, role and candidate format, the squared
//      relative error of the layer's attention output with only that role in that format;
//   2. search: the multiple-choice knapsack (policy_search.h) minimising the summed error with
//      bytes per token within the budget;
//   3. confirmation: perplexity / KLD against the baseline for the searched policy and the
//      uniform policies within the budget the same error model ranks best, on the confirmation
//      chunks; the report names the policy with the lowest measured KLD and the paired per-token
//      KLD difference of each against the searched one.
#pragma once

#include <string>
#include <vector>

#include "eval/attention_capture.h"
#include "eval/perplexity.h"
#include "eval/policy_search.h"
#include "eval/progress.h"
#include "eval/report.h"

namespace kvpack::eval {

struct PolicySearchOptions {
  std::vector<format::FormatId> formats;  // candidates
  double budget_bytes_per_token = 0;
  std::string budget_text;  // how the budget was given (for the report)
  PerplexityOptions ppl;    // chunking of the text (confirmation and calibration)
  int compare = 4;          // uniform policies measured beside the searched one
};

// The default candidates: every format but f32 and bf16 (f16 costs the same and is closer).
std::vector<format::FormatId> default_search_formats();

// Per layer and role, the squared relative error of the attention output with only that role in
// each candidate format (the other role f32), on the captured q/k/v.
SensitivityTable measure_sensitivity(const model::Model& model, const AttentionCapture& capture,
                                     const std::vector<format::FormatId>& formats, ThreadPool& pool,
                                     const Progress& progress = {});

struct ConfirmedPolicy {
  std::string kind;      // "searched" or "uniform"
  double predicted = 0;  // summed table error
  PolicyPerplexity measured;
  // Per scored token, KLD of this policy minus the searched policy's: mean and standard error.
  double dkld = 0, dkld_stderr = 0;
};

struct PolicySearchReport {
  std::string model_path;
  std::string model_name;
  PolicySearchOptions options;
  double budget_bits = 0;  // the budget in bits per stored value
  int64_t calibration_chunk = 0;
  bool calibration_held_out = true;  // false when the text has a single chunk
  int64_t confirmation_chunks = 0;
  SensitivityTable table;
  std::vector<std::vector<Option>> items;
  SearchResult result;
  format::KVPolicy searched;
  PolicyPerplexity baseline;
  std::vector<ConfirmedPolicy> confirmed;  // the searched policy first
  size_t best = 0;                         // index of the lowest measured mean KLD
  int threads = 0;
  double seconds = 0;
};

PolicySearchReport search_policy(const model::Model& model, std::span<const int32_t> tokens,
                                 const format::KVPolicy& baseline,
                                 const PolicySearchOptions& options, ThreadPool& pool,
                                 const Progress& progress = {});

// The sensitivity table, the searched policy (its --kv text, bytes per token, per-layer choice)
// and the confirmation table with the verdict; KLD against bytes per token as the chart, the
// searched policy highlighted.
Report render_policy_search(const PolicySearchReport& report, const std::string& command);

}  // namespace kvpack::eval
