#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "base/error.h"

namespace kvpack::model {
namespace {

// YaRN: the dimension whose wavelength completes `rotations` turns over the original context.
double yarn_corr_dim(int n_dims, int64_t n_ctx_orig, double rotations, double base) {
  return n_dims * std::log(static_cast<double>(n_ctx_orig) / (rotations * 2 * std::numbers::pi)) /
         (2 * std::log(base));
}

}  // namespace

Rope::Rope(RopeConfig config) : config_(std::move(config)) {
  const int half = config_.n_dims / 2;
  if (config_.n_dims <= 0 || config_.n_dims % 2 != 0) {
    fail("RoPE dimension count {} must be a positive even number", config_.n_dims);
  }
  if (!config_.freq_factors.empty() && static_cast<int>(config_.freq_factors.size()) != half) {
    fail("RoPE frequency factors have {} entries, expected {}", config_.freq_factors.size(), half);
  }
  inv_freq_.resize(static_cast<size_t>(half));
  for (int i = 0; i < half; ++i) {
    double f = std::pow(config_.freq_base, -2.0 * i / config_.n_dims);
    if (!config_.freq_factors.empty()) f /= config_.freq_factors[static_cast<size_t>(i)];
    inv_freq_[static_cast<size_t>(i)] = f;
  }
  if (config_.scaling == RopeScaling::yarn) {
    // Low-frequency pairs (long wavelengths) are interpolated, high-frequency ones keep their
    // original rotation; pairs in between blend linearly (the YaRN ramp).
    const double lo =
        std::max(0.0, std::floor(yarn_corr_dim(config_.n_dims, config_.original_context,
                                               config_.yarn_beta_fast, config_.freq_base)));
    const double hi = std::min(config_.n_dims - 1.0,
                               std::ceil(yarn_corr_dim(config_.n_dims, config_.original_context,
                                                       config_.yarn_beta_slow, config_.freq_base)));
    yarn_mix_.resize(static_cast<size_t>(half));
    for (int i = 0; i < half; ++i) {
      const double y = (i - lo) / std::max(0.001, hi - lo);
      yarn_mix_[static_cast<size_t>(i)] = 1.0 - std::clamp(y, 0.0, 1.0);
    }
    mscale_ = config_.yarn_attn_factor * (1.0 + 0.1 * std::log(config_.scale_factor));
  }
}

void Rope::pair_cos_sin(int64_t pos, int i, double* c, double* s) const {
  const double extrap = static_cast<double>(pos) * inv_freq_[static_cast<size_t>(i)];
  double theta = extrap;
  if (config_.scaling == RopeScaling::linear) {
    theta = extrap / config_.scale_factor;
  } else if (config_.scaling == RopeScaling::yarn) {
    const double interp = extrap / config_.scale_factor;
    const double mix = yarn_mix_[static_cast<size_t>(i)];
    theta = interp * (1 - mix) + extrap * mix;
  }
  *c = std::cos(theta) * mscale_;
  *s = std::sin(theta) * mscale_;
}

void Rope::apply(float* x, int n_heads, int head_dim, int64_t pos) const {
  const int half = config_.n_dims / 2;
  KVPACK_ASSERT(config_.n_dims <= head_dim, "rope dims {} > head dim {}", config_.n_dims, head_dim);
  for (int i = 0; i < half; ++i) {
    double c, s;
    pair_cos_sin(pos, i, &c, &s);
    for (int h = 0; h < n_heads; ++h) {
      float* v = x + static_cast<size_t>(h) * head_dim;
      // interleaved: pair (2i, 2i+1); neox: pair (i, i + n_dims/2).
      const int a = config_.ordering == RopeOrdering::interleaved ? 2 * i : i;
      const int b = config_.ordering == RopeOrdering::interleaved ? 2 * i + 1 : i + half;
      const double x0 = v[a], x1 = v[b];
      v[a] = static_cast<float>(x0 * c - x1 * s);
      v[b] = static_cast<float>(x0 * s + x1 * c);
    }
  }
}

}  // namespace kvpack::model
