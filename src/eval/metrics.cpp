#include "eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "base/error.h"

namespace kvpack::eval {

void log_softmax(std::span<const float> logits, std::span<double> out) {
  KVPACK_ASSERT(logits.size() == out.size() && !logits.empty());
  double mx = -std::numeric_limits<double>::infinity();
  for (float l : logits) mx = std::max(mx, static_cast<double>(l));
  double sum = 0;
  for (float l : logits) sum += std::exp(static_cast<double>(l) - mx);
  const double log_z = mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - log_z;
}

double kl_divergence(std::span<const double> log_p, std::span<const double> log_q) {
  KVPACK_ASSERT(log_p.size() == log_q.size());
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0) kl += p * (log_p[i] - log_q[i]);
  }
  return std::max(kl, 0.0);  // rounding can leave -1e-18 for identical inputs
}

double nll(std::span<const double> log_p, int32_t target) {
  KVPACK_ASSERT(target >= 0 && static_cast<size_t>(target) < log_p.size());
  return -log_p[static_cast<size_t>(target)];
}

double Summary::mean() const {
  if (values_.empty()) return 0;
  return std::accumulate(values_.begin(), values_.end(), 0.0) / static_cast<double>(values_.size());
}

double Summary::stderr_of_mean() const {
  const size_t n = values_.size();
  if (n < 2) return 0;
  const double m = mean();
  double ss = 0;
  for (double v : values_) ss += (v - m) * (v - m);
  return std::sqrt(ss / static_cast<double>(n - 1) / static_cast<double>(n));
}

double Summary::percentile(double p) const {
  if (values_.empty()) return 0;
  std::vector<double> v = values_;
  std::sort(v.begin(), v.end());
  const double pos = std::clamp(p, 0.0, 100.0) / 100.0 * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (pos - static_cast<double>(lo)) * (v[hi] - v[lo]);
}

double Summary::max() const {
  return values_.empty() ? 0 : *std::max_element(values_.begin(), values_.end());
}

double relative_error(std::span<const float> a, std::span<const float> b) {
  KVPACK_ASSERT(a.size() == b.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = static_cast<double>(a[i]) - b[i];
    num += d * d;
    den += static_cast<double>(b[i]) * b[i];
  }
  if (den == 0) return num == 0 ? 0 : std::numeric_limits<double>::infinity();
  return std::sqrt(num / den);
}

double cosine(std::span<const float> a, std::span<const float> b) {
  KVPACK_ASSERT(a.size() == b.size());
  double ab = 0, aa = 0, bb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    ab += static_cast<double>(a[i]) * b[i];
    aa += static_cast<double>(a[i]) * a[i];
    bb += static_cast<double>(b[i]) * b[i];
  }
  if (aa == 0 && bb == 0) return 1;
  if (aa == 0 || bb == 0) return 0;
  return ab / std::sqrt(aa * bb);
}

std::vector<int> top_k_indices(std::span<const float> x, int k) {
  std::vector<int> idx(x.size());
  std::iota(idx.begin(), idx.end(), 0);
  const size_t kk = std::min(static_cast<size_t>(std::max(k, 0)), idx.size());
  std::partial_sort(idx.begin(), idx.begin() + static_cast<ptrdiff_t>(kk), idx.end(),
                    [&](int i, int j) {
                      const float a = x[static_cast<size_t>(i)], b = x[static_cast<size_t>(j)];
                      return a > b || (a == b && i < j);
                    });
  idx.resize(kk);
  return idx;
}

double top_k_overlap(std::span<const float> a, std::span<const float> b, int k) {
  KVPACK_ASSERT(a.size() == b.size());
  const std::vector<int> ta = top_k_indices(a, k), tb = top_k_indices(b, k);
  if (ta.empty()) return 1;
  size_t common = 0;
  for (int i : ta) common += std::find(tb.begin(), tb.end(), i) != tb.end();
  return static_cast<double>(common) / static_cast<double>(ta.size());
}

}  // namespace kvpack::eval
