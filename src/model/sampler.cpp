#include "model/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "base/error.h"

namespace kvpack::model {

namespace {

[[noreturn]] void all_nan() {
  fail("every next-token logit is NaN (the model's weights are broken)");
}

}  // namespace

int32_t argmax(std::span<const float> logits) {
  KVPACK_ASSERT(!logits.empty());
  int32_t best = -1;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[static_cast<size_t>(best)]) best = static_cast<int32_t>(i);
  }
  if (best < 0) all_nan();
  return best;
}

void SamplerConfig::validate() const {
  if (!std::isfinite(temperature)) {
    fail("--temp {}: expected a finite temperature (0 or below: greedy)", temperature);
  }
  if (!(top_p >= 0.0f && top_p <= 1.0f)) {
    fail("--top-p {}: expected a probability within 0..1 (1 turns it off)", top_p);
  }
  if (!(min_p >= 0.0f && min_p <= 1.0f)) {
    fail("--min-p {}: expected a probability within 0..1 (0 turns it off)", min_p);
  }
  if (!(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f)) {
    fail("--repeat-penalty {}: expected a finite factor above 0 (1 turns it off)", repeat_penalty);
  }
  if (repeat_last_n < -1) {
    fail("--repeat-last-n {}: expected 0 (off), a token count, or -1 (every token so far)",
         repeat_last_n);
  }
}

Sampler::Sampler(const SamplerConfig& config) : config_(config), rng_(config.seed) {
  config_.validate();
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history) {
  work_.assign(logits.begin(), logits.end());
  if (config_.repeat_penalty != 1.0f && config_.repeat_last_n != 0) {
    const size_t n = config_.repeat_last_n < 0
                         ? history.size()
                         : std::min(history.size(), static_cast<size_t>(config_.repeat_last_n));
    std::unordered_set<int32_t> seen(history.end() - static_cast<ptrdiff_t>(n), history.end());
    for (int32_t t : seen) {
      if (t < 0 || static_cast<size_t>(t) >= work_.size()) continue;
      float& l = work_[static_cast<size_t>(t)];
      l = l > 0 ? l / config_.repeat_penalty : l * config_.repeat_penalty;
    }
  }
  if (config_.temperature <= 0.0f) return argmax(work_);

  // Candidates sorted by logit, descending (ties: lower id first, so runs are deterministic).
  candidates_.clear();
  for (size_t i = 0; i < work_.size(); ++i) {
    if (!std::isnan(work_[i])) candidates_.emplace_back(work_[i], static_cast<int32_t>(i));
  }
  if (candidates_.empty()) all_nan();
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  size_t keep = candidates_.size();
  if (config_.top_k > 0) keep = std::min(keep, static_cast<size_t>(config_.top_k));
  std::partial_sort(candidates_.begin(), candidates_.begin() + static_cast<ptrdiff_t>(keep),
                    candidates_.end(), by_logit);
  candidates_.resize(keep);

  // Probabilities at temperature 1 decide top-p and min-p (as llama.cpp's default chain).
  const float max_logit = candidates_[0].first;
  std::vector<double> p(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i)
    sum += p[i] = std::exp(static_cast<double>(candidates_[i].first) - max_logit);
  for (auto& x : p) x /= sum;
  if (config_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += p[n++];
      if (cum >= config_.top_p) break;
    }
    keep = std::max<size_t>(n, 1);
  }
  if (config_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && p[n] >= config_.min_p * p[0]) ++n;
    keep = n;
  }

  // Draw from the survivors at the configured temperature.
  double total = 0;
  for (size_t i = 0; i < keep; ++i) {
    p[i] = std::exp((static_cast<double>(candidates_[i].first) - max_logit) / config_.temperature);
    total += p[i];
  }
  double r = rng_.uniform() * total;
  for (size_t i = 0; i < keep; ++i) {
    r -= p[i];
    if (r < 0) return candidates_[i].second;
  }
  return candidates_[keep - 1].second;
}

}  // namespace kvpack::model
