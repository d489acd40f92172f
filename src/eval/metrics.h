// Quality metrics comparing a policy's outputs against a baseline's: next-token KL divergence,
// perplexity, top-1 agreement, attention-output error and top-k overlap. Plain maths on spans,
// double precision, so every eval report (and its tests) shares one definition.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

namespace kvpack::eval {

// log_softmax(logits) into out (same length), computed in double.
void log_softmax(std::span<const float> logits, std::span<double> out);

// KL(P || Q) = sum_i p_i (log p_i - log q_i) from log-probabilities; 0 when equal.
double kl_divergence(std::span<const double> log_p, std::span<const double> log_q);

// Negative log-likelihood of `target` under log-probabilities.
double nll(std::span<const double> log_p, int32_t target);

// Running summary of a sample: mean, standard error, percentiles (kept values).
class Summary {
 public:
  void add(double x) { values_.push_back(x); }
  size_t count() const { return values_.size(); }
  double mean() const;
  double stderr_of_mean() const;
  // p in [0, 100], linear interpolation between order statistics.
  double percentile(double p) const;
  double max() const;

 private:
  std::vector<double> values_;
};

// ||a - b|| / ||b|| (0 when both are zero; infinity when only b is).
double relative_error(std::span<const float> a, std::span<const float> b);
// Cosine similarity; 1 when both are zero.
double cosine(std::span<const float> a, std::span<const float> b);
// |top_k(a) ∩ top_k(b)| / k over indices of the largest values (ties: lower index first).
double top_k_overlap(std::span<const float> a, std::span<const float> b, int k);
// Indices of the k largest values, largest first (ties: lower index first).
std::vector<int> top_k_indices(std::span<const float> x, int k);

}  // namespace kvpack::eval
