#include "model/quant_ref.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/half.h"

namespace kvpack::model {
namespace {

bool block_is_finite(const float* x) {
  for (int j = 0; j < kQBlock; ++j) {
    if (!std::isfinite(x[j])) return false;
  }
  return true;
}

bool f16_is_finite(uint16_t h) {
  return (h & 0x7c00u) != 0x7c00u;
}

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

bool is_weight_type(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q8_0:
    case GgmlType::Q4_0:
      return true;
    default:
      return false;
  }
}

int weight_block_size(GgmlType t) {
  KVPACK_ASSERT(is_weight_type(t), "type {}", ggml_type_name(static_cast<uint32_t>(t)));
  return (t == GgmlType::Q8_0 || t == GgmlType::Q4_0) ? kQBlock : 1;
}

int weight_block_bytes(GgmlType t) {
  switch (t) {
    case GgmlType::F32:
      return 4;
    case GgmlType::F16:
    case GgmlType::BF16:
      return 2;
    case GgmlType::Q8_0:
      return sizeof(BlockQ8_0);
    case GgmlType::Q4_0:
      return sizeof(BlockQ4_0);
    default:
      KVPACK_ASSERT(false, "type {}", ggml_type_name(static_cast<uint32_t>(t)));
      return 0;
  }
}

size_t weight_row_bytes(GgmlType t, int64_t n) {
  const int bs = weight_block_size(t);
  KVPACK_ASSERT(n >= 0 && n % bs == 0, "{} values do not fill {}-value blocks", n, bs);
  return static_cast<size_t>(n / bs) * static_cast<size_t>(weight_block_bytes(t));
}

void quantize_row_q8_0_ref(const float* x, BlockQ8_0* y, int64_t n) {
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  for (int64_t b = 0; b < n / kQBlock; ++b, x += kQBlock) {
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    if (!block_is_finite(x) || !f16_is_finite(f32_to_f16(d))) {
      y[b].d = f32_to_f16(NAN);
      std::memset(y[b].qs, 0, sizeof(y[b].qs));
      continue;
    }
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    // roundf (half away from zero), as ggml; |x * id| <= 127 so the cast is in range.
    for (int j = 0; j < kQBlock; ++j) y[b].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void quantize_row_q4_0_ref(const float* x, BlockQ4_0* y, int64_t n) {
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  for (int64_t b = 0; b < n / kQBlock; ++b, x += kQBlock) {
    // The signed value of largest magnitude (first one on ties) maps to -8.
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQBlock; ++j) {
      if (amax < std::fabs(x[j])) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    if (!block_is_finite(x) || !f16_is_finite(f32_to_f16(d))) {
      y[b].d = f32_to_f16(NAN);
      std::memset(y[b].qs, 0x88, sizeof(y[b].qs));
      continue;
    }
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    y[b].d = f32_to_f16(d);
    for (int j = 0; j < kQBlock / 2; ++j) {
      // Truncating casts of x*id + 8.5 (in [0.5, 16.5]), clamped to 15: ggml's rounding.
      const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
      const int hi =
          std::min(15, static_cast<int>(static_cast<int8_t>(x[j + kQBlock / 2] * id + 8.5f)));
      y[b].qs[j] = static_cast<uint8_t>(lo | (hi << 4));
    }
  }
}

void quantize_row_ref(GgmlType t, const float* x, void* y, int64_t n) {
  switch (t) {
    case GgmlType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16: {
      auto* out = static_cast<uint8_t*>(y);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    }
    case GgmlType::BF16: {
      auto* out = static_cast<uint8_t*>(y);
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    }
    case GgmlType::Q8_0:
      quantize_row_q8_0_ref(x, static_cast<BlockQ8_0*>(y), n);
      return;
    case GgmlType::Q4_0:
      quantize_row_q4_0_ref(x, static_cast<BlockQ4_0*>(y), n);
      return;
    default:
      KVPACK_ASSERT(false, "type {}", ggml_type_name(static_cast<uint32_t>(t)));
  }
}

void dequantize_row_ref(GgmlType t, const void* x, float* y, int64_t n) {
  const auto* p = static_cast<const uint8_t*>(x);
  switch (t) {
    case GgmlType::F32:
      std::memcpy(y, x, static_cast<size_t>(n) * 4);
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_u16(p + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(p + 2 * i));
      return;
    case GgmlType::Q8_0:
      KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        BlockQ8_0 blk;
        std::memcpy(&blk, p + b * sizeof(BlockQ8_0), sizeof(blk));
        const float d = f16_to_f32(blk.d);
        for (int j = 0; j < kQBlock; ++j) y[b * kQBlock + j] = static_cast<float>(blk.qs[j]) * d;
      }
      return;
    case GgmlType::Q4_0:
      KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
      for (int64_t b = 0; b < n / kQBlock; ++b) {
        BlockQ4_0 blk;
        std::memcpy(&blk, p + b * sizeof(BlockQ4_0), sizeof(blk));
        const float d = f16_to_f32(blk.d);
        float* out = y + b * kQBlock;
        // (q - 8) * d, in this order: d*q - 8*d would turn ggml's -0.0 into +0.0.
        for (int j = 0; j < kQBlock / 2; ++j) {
          out[j] = static_cast<float>((blk.qs[j] & 0xf) - 8) * d;
          out[j + kQBlock / 2] = static_cast<float>((blk.qs[j] >> 4) - 8) * d;
        }
      }
      return;
    default:
      KVPACK_ASSERT(false, "type {}", ggml_type_name(static_cast<uint32_t>(t)));
  }
}

double vec_dot_f32_ref(GgmlType t, const void* w, const float* x, int64_t n, double* abs_sum) {
  const int bs = weight_block_size(t);
  const size_t block_bytes = static_cast<size_t>(weight_block_bytes(t));
  const auto* p = static_cast<const uint8_t*>(w);
  // Dequantize one block (or value) at a time: exact, so only the double sum rounds.
  float wf[kQBlock];
  double sum = 0.0, asum = 0.0;
  for (int64_t i = 0; i < n; i += bs) {
    dequantize_row_ref(t, p + static_cast<size_t>(i / bs) * block_bytes, wf, bs);
    for (int j = 0; j < bs; ++j) {
      const double term = static_cast<double>(wf[j]) * static_cast<double>(x[i + j]);
      sum += term;
      asum += std::fabs(term);
    }
  }
  if (abs_sum != nullptr) *abs_sum = asum;
  return sum;
}

double vec_dot_q8_ref(GgmlType t, const void* w, const BlockQ8_0* xq, int64_t n, double* abs_sum) {
  KVPACK_ASSERT(t == GgmlType::Q8_0 || t == GgmlType::Q4_0, "type {}",
                ggml_type_name(static_cast<uint32_t>(t)));
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  const auto* p = static_cast<const uint8_t*>(w);
  const size_t block_bytes = static_cast<size_t>(weight_block_bytes(t));
  float wf[kQBlock];
  double sum = 0.0, asum = 0.0;
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    // dequant(w) * q * d_x, summed in double: the value the integer kernels compute exactly per
    // block before their one f32 rounding of the block's contribution.
    dequantize_row_ref(t, p + static_cast<size_t>(b) * block_bytes, wf, kQBlock);
    const double dx = f16_to_f32(xq[b].d);
    for (int j = 0; j < kQBlock; ++j) {
      const double term = static_cast<double>(wf[j]) * xq[b].qs[j] * dx;
      sum += term;
      asum += std::fabs(term);
    }
  }
  if (abs_sum != nullptr) *abs_sum = asum;
  return sum;
}

double q8_activation_error_bound(GgmlType t, const void* w, const float* x, int64_t n) {
  if (t != GgmlType::Q8_0 && t != GgmlType::Q4_0) return 0.0;
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  const auto* p = static_cast<const uint8_t*>(w);
  const size_t block_bytes = static_cast<size_t>(weight_block_bytes(t));
  float wf[kQBlock];
  double bound = 0.0;
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    const float* xb = x + b * kQBlock;
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(xb[j]));
    const double d = amax / 127.0f;
    const double d16 = f16_to_f32(f32_to_f16(amax / 127.0f));
    // |q - x/d| <= 1/2 plus the rounding of 1/d and of x * (1/d): 127 * 2 * 2^-24 < 2^-14.
    const double per_value = d * (0.5 + 0x1p-14) + 127.0 * std::fabs(d - d16);
    dequantize_row_ref(t, p + static_cast<size_t>(b) * block_bytes, wf, kQBlock);
    double wsum = 0.0;
    for (int j = 0; j < kQBlock; ++j) wsum += std::fabs(wf[j]);
    bound += per_value * wsum;
  }
  return bound;
}

double q8_activation_error_rms(GgmlType t, const void* w, const float* x, int64_t n) {
  if (t != GgmlType::Q8_0 && t != GgmlType::Q4_0) return 0.0;
  KVPACK_ASSERT(n % kQBlock == 0, "n = {}", n);
  const auto* p = static_cast<const uint8_t*>(w);
  const size_t block_bytes = static_cast<size_t>(weight_block_bytes(t));
  float wf[kQBlock];
  double var = 0.0;
  for (int64_t b = 0; b < n / kQBlock; ++b) {
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(x[b * kQBlock + j]));
    const double d = f16_to_f32(f32_to_f16(amax / 127.0f));
    dequantize_row_ref(t, p + static_cast<size_t>(b) * block_bytes, wf, kQBlock);
    double w2 = 0.0;
    for (int j = 0; j < kQBlock; ++j) w2 += static_cast<double>(wf[j]) * wf[j];
    var += w2 * d * d / 12.0;
  }
  return std::sqrt(var);
}

}  // namespace kvpack::model
