// The TurboQuant MSE quantizer; see turbo_mse.h.
#include "format/turbo_mse.h"

#include <cmath>

#include "base/error.h"
#include "base/half.h"
#include "base/rng.h"

namespace kvpack::format {

std::string turbo_geometry_problem(const CodecConfig& config) {
  const int d = config.head_dim;
  if (d < kTurboMinDim || d > kTurboMaxDim || d % 8 != 0) {
    return "TurboQuant needs a head dim that is a multiple of 8 in " +
           std::to_string(kTurboMinDim) + ".." + std::to_string(kTurboMaxDim);
  }
  return {};
}

void saturate_to_f16_range(const float* x, int n, float* out) {
  for (int j = 0; j < n; ++j) {
    const float v = x[j];
    out[j] = std::isnan(v) ? 0.0f : std::fmin(std::fmax(v, -kF16Max), kF16Max);
  }
}

TurboMse::TurboMse(int head_dim, int bits, int n_heads, uint64_t seed)
    : dim_(head_dim), cb_(format::codebook(head_dim, bits)) {
  KVPACK_ASSERT(head_dim >= kTurboMinDim && head_dim <= kTurboMaxDim && head_dim % 8 == 0,
                "TurboMse built for head dim {}; the registry refuses it first", head_dim);
  rotations_.reserve(static_cast<size_t>(n_heads));
  for (int h = 0; h < n_heads; ++h) {
    rotations_.emplace_back(head_dim, mix_seed(seed, 0x7475726230ull, static_cast<uint64_t>(h)));
  }
}

uint16_t TurboMse::quantize(int head, const float* x, uint8_t* idx) const {
  double norm2 = 0;
  for (int j = 0; j < dim_; ++j) norm2 += static_cast<double>(x[j]) * x[j];
  const double norm = std::sqrt(norm2);
  if (norm == 0) {
    for (int j = 0; j < dim_; ++j) idx[j] = static_cast<uint8_t>(cb_.levels() / 2);
    return 0;
  }
  float u[kTurboMaxDim];  // [d] rotated x (no allocation per token)
  rotations_[head].forward(x, u);
  const float inv = static_cast<float>(1.0 / norm);
  double c2 = 0;
  for (int j = 0; j < dim_; ++j) {
    idx[j] = cb_.quantize(u[j] * inv);
    const double c = cb_.centroids[idx[j]];
    c2 += c * c;
  }
  // Norm correction: scale so the decoded vector has the input's norm. ||c[idx]|| > 0 always
  // (the codebook has no zero level).
  return f32_to_f16_sat(static_cast<float>(norm / std::sqrt(c2)));
}

void TurboMse::reconstruct_rotated(uint16_t stored, const uint8_t* idx, float* z) const {
  const float s = f16_to_f32(stored);
  for (int j = 0; j < dim_; ++j) z[j] = s * cb_.centroids[idx[j]];
}

void TurboMse::reconstruct(int head, uint16_t stored, const uint8_t* idx, float* out) const {
  reconstruct_rotated(stored, idx, out);
  rotations_[head].inverse(out, out);
}

double TurboMse::dot_codes(const float* qp, const uint8_t* idx) const {
  double s = 0;
  for (int j = 0; j < dim_; ++j) s += static_cast<double>(qp[j]) * cb_.centroids[idx[j]];
  return s;
}

}  // namespace kvpack::format
