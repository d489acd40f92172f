// Attention fidelity: how far each layer's attention moves when its captured K and V are stored
// in a policy's formats, measured against the f32 cache on the same captured q/k/v:
//   * the output (tokens x heads rows): relative error ||O - O_ref|| / ||O_ref|| and cosine;
//   * the logits q.k / sqrt(d) as the K format scores them: mean (bias) and spread of the error;
//   * the attention weights: top-k overlap, and the strongest long-distance link of each query
//     (the key at least long_distance tokens back with the most weight, when that weight is above
//     uniform): whether it stays the strongest and how its weight changes;
//   * the same output error with only K (values f32) or only V (keys f32) in the policy's
//     formats, which says which side dominates.
#pragma once

#include <string>
#include <vector>

#include "eval/attention_capture.h"
#include "eval/progress.h"
#include "eval/report.h"

namespace kvpack::eval {

struct FidelityOptions {
  int top_k = 8;            // attention weights compared by top-k overlap
  int long_distance = 128;  // a "long-distance" link spans at least this many tokens
};

struct LayerFidelity {
  int layer = 0;
  format::FormatId k = format::FormatId::f32, v = format::FormatId::f32;
  double out_rel_error = 0;  // Frobenius, over every (token, head) row
  double out_cos_mean = 1, out_cos_min = 1;
  double k_only_rel_error = 0, v_only_rel_error = 0;
  double logit_err_mean = 0, logit_err_std = 0;  // scaled logits (natural-log units)
  double topk_overlap = 1;  // mean over (query, head) rows with more than top_k keys
  int64_t links = 0;        // (query, head) rows whose strongest distant key has w > 1 / keys
  double link_weight = 0;   // mean reference weight of those links
  // sum(w - w_ref) / sum(w_ref) over the links, and the same with |w - w_ref|.
  double link_rel_change = 0, link_abs_rel_change = 0;
  double link_kept = 1;  // fraction still the strongest long-distance link
};

struct PolicyFidelity {
  format::KVPolicy policy;
  double bytes_per_token = 0;
  double bits_per_value = 0;
  std::vector<LayerFidelity> layers;
  double mean_rel_error = 0;            // over layers
  std::vector<int> most_sensitive;      // layers by decreasing output error (top three)
  int k_dominant_layers = 0;            // layers whose K-only error exceeds their V-only error
  double k_only_sq = 0, v_only_sq = 0;  // summed squared relative errors over layers
};

struct FidelityReport {
  std::string model_path;
  std::string model_name;
  int64_t tokens = 0;
  int page_tokens = 32;
  FidelityOptions options;
  int threads = 0;
  std::vector<PolicyFidelity> rows;
  double seconds = 0;
};

// Logit and weight statistics of one layer: the policy's K pages against the f32 reference's.
void compare_logits(const cache::LayerView& ref, const cache::LayerView& pol,
                    const AttentionCapture& capture, int layer, const FidelityOptions& options,
                    ThreadPool& pool, LayerFidelity& out);

// Output statistics of one layer: (tokens x heads) rows of head_dim_v.
void compare_outputs(const std::vector<float>& out, const std::vector<float>& ref, int head_dim_v,
                     LayerFidelity& result);

// Every policy against the f32 reference, layer by layer (also K-only and V-only variants).
FidelityReport evaluate_attention(const model::Model& model, const AttentionCapture& capture,
                                  const std::vector<format::KVPolicy>& policies,
                                  const FidelityOptions& options, ThreadPool& pool,
                                  const Progress& progress = {});

// Summary table per policy, a per-layer table for each, JSON with every figure, and mean
// output error against bytes per token as the chart.
Report render_attention(const FidelityReport& report, const std::string& command);

}  // namespace kvpack::eval
