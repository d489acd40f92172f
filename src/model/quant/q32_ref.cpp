// Scalar codecs of the float types and the 32-value block types: F32, F16, BF16, Q8_0, Q4_0,
// Q4_1, Q5_0, Q5_1, IQ4_NL (codecs.h). The quantizers of Q8_0 .. Q5_1 evaluate ggml's reference
// expressions in the same f32 order, so they give its bytes (truncating casts, x * (1/d) rather
// than x / d, d rounded to f16 only when stored).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/error.h"
#include "base/half.h"
#include "model/quant/codecs.h"
#include "model/quant/fit.h"

namespace kvpack::model::codec {
namespace {

uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

template <typename Block>
Block load_block(const uint8_t* blocks, int64_t i) {
  Block b;
  std::memcpy(&b, blocks + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

template <typename Block>
void store_block(uint8_t* blocks, int64_t i, const Block& b) {
  std::memcpy(blocks + i * static_cast<int64_t>(sizeof(Block)), &b, sizeof(Block));
}

uint32_t load_qh(const uint8_t* qh) {
  uint32_t v;
  std::memcpy(&v, qh, 4);
  return v;
}

// The signed value of largest magnitude, the first one on ties (Q4_0 / Q5_0 / IQ4_NL).
float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

void min_max(const float* x, int n, float* lo, float* hi) {
  *lo = x[0];
  *hi = x[0];
  for (int j = 1; j < n; ++j) {
    *lo = std::min(*lo, x[j]);
    *hi = std::max(*hi, x[j]);
  }
}

// Value j of a block from its 16 nibble bytes: j < 16 low nibbles, j >= 16 high nibbles.
int nibble(const uint8_t* qs, int j) {
  return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4;
}

}  // namespace

bool all_finite(const float* x, int n) {
  for (int j = 0; j < n; ++j) {
    if (!std::isfinite(x[j])) return false;
  }
  return true;
}

bool f16_finite(uint16_t h) {
  return (h & 0x7c00u) != 0x7c00u;
}

uint16_t f16_nan() {
  return f32_to_f16(NAN);
}

int nearest(float v) {
  return static_cast<int>(std::nearbyint(v));  // default rounding mode: half to even
}

// ---- float types ----

void dequantize_f32(const uint8_t* blocks, float* y, float*, int64_t n) {
  std::memcpy(y, blocks, static_cast<size_t>(n) * 4);
}
void quantize_f32(const float* x, uint8_t* blocks, int64_t n) {
  std::memcpy(blocks, x, static_cast<size_t>(n) * 4);
}
void dequantize_f16(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = f16_to_f32(load_u16(blocks + 2 * i));
}
void quantize_f16(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_f16(x[i]);
    std::memcpy(blocks + 2 * i, &h, 2);
  }
}
void dequantize_bf16(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = bf16_to_f32(load_u16(blocks + 2 * i));
}
void quantize_bf16(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const uint16_t h = f32_to_bf16(x[i]);
    std::memcpy(blocks + 2 * i, &h, 2);
  }
}

// ---- Q8_0: x = q * d ----

void dequantize_q8_0(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockQ8_0>(blocks, i);
    const float d = f16_to_f32(blk.d);
    for (int j = 0; j < kQBlock; ++j) y[i * kQBlock + j] = static_cast<float>(blk.qs[j]) * d;
  }
}

void quantize_q8_0(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockQ8_0 blk{};
    float amax = 0.0f;
    for (int j = 0; j < kQBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    blk.d = f32_to_f16(d);
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
    } else {
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      // roundf: half away from zero; |x * id| <= 127.
      for (int j = 0; j < kQBlock; ++j) blk.qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q4_0: x = (q - 8) * d ----

void dequantize_q4_0(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockQ4_0>(blocks, i);
    const float d = f16_to_f32(blk.d);
    // (q - 8) * d, in this order: d*q - 8*d would turn ggml's -0.0 into +0.0.
    for (int j = 0; j < kQBlock; ++j)
      y[i * kQBlock + j] = static_cast<float>(nibble(blk.qs, j) - 8) * d;
  }
}

void quantize_q4_0(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockQ4_0 blk{};
    const float d = signed_absmax(x, kQBlock) / -8.0f;
    blk.d = f32_to_f16(d);
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
      std::memset(blk.qs, 0x88, sizeof(blk.qs));
    } else {
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int j = 0; j < kQBlock / 2; ++j) {
        // Truncating casts of x*id + 8.5 (in [0.5, 16.5]), clamped to 15: ggml's rounding.
        const int lo = std::min(15, static_cast<int>(static_cast<int8_t>(x[j] * id + 8.5f)));
        const int hi = std::min(15, static_cast<int>(static_cast<int8_t>(x[j + 16] * id + 8.5f)));
        blk.qs[j] = static_cast<uint8_t>(lo | (hi << 4));
      }
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q4_1: x = q * d + m ----

void dequantize_q4_1(const uint8_t* blocks, float* y, float* b, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockQ4_1>(blocks, i);
    const float d = f16_to_f32(blk.d), m = f16_to_f32(blk.m);
    for (int j = 0; j < kQBlock; ++j) {
      y[i * kQBlock + j] = static_cast<float>(nibble(blk.qs, j)) * d + m;
      if (b != nullptr) b[i * kQBlock + j] = -m;
    }
  }
}

void quantize_q4_1(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockQ4_1 blk{};
    float lo, hi;
    min_max(x, kQBlock, &lo, &hi);
    const float d = (hi - lo) / 15.0f;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(lo);
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d) || !f16_finite(blk.m)) {
      blk.d = f16_nan();
    } else {
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int j = 0; j < kQBlock / 2; ++j) {
        const int q0 = std::min(15, static_cast<int>(static_cast<int8_t>((x[j] - lo) * id + 0.5f)));
        const int q1 =
            std::min(15, static_cast<int>(static_cast<int8_t>((x[j + 16] - lo) * id + 0.5f)));
        blk.qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
      }
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q5_0 / Q5_1: 4 low bits as Q4_x, the fifth in bit j of qh ----

namespace {

int q5_value(const uint8_t* qs, uint32_t qh, int j) {
  return nibble(qs, j) | static_cast<int>(((qh >> j) & 1u) << 4);
}

void pack_q5(const int* q, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQBlock / 2; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 15) | ((q[j + 16] & 15) << 4));
    qh |= static_cast<uint32_t>((q[j] >> 4) & 1) << j;
    qh |= static_cast<uint32_t>((q[j + 16] >> 4) & 1) << (j + 16);
  }
  std::memcpy(qh_bytes, &qh, 4);
}

}  // namespace

void dequantize_q5_0(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockQ5_0>(blocks, i);
    const float d = f16_to_f32(blk.d);
    const uint32_t qh = load_qh(blk.qh);
    for (int j = 0; j < kQBlock; ++j) {
      y[i * kQBlock + j] = static_cast<float>(q5_value(blk.qs, qh, j) - 16) * d;
    }
  }
}

void quantize_q5_0(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockQ5_0 blk{};
    const float d = signed_absmax(x, kQBlock) / -16.0f;
    blk.d = f32_to_f16(d);
    int q[kQBlock];
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
      std::fill(q, q + kQBlock, 16);
    } else {
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      for (int j = 0; j < kQBlock; ++j) {
        q[j] = std::min(31, static_cast<int>(static_cast<int8_t>(x[j] * id + 16.5f)));
      }
    }
    pack_q5(q, blk.qs, blk.qh);
    store_block(blocks, i, blk);
  }
}

void dequantize_q5_1(const uint8_t* blocks, float* y, float* b, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockQ5_1>(blocks, i);
    const float d = f16_to_f32(blk.d), m = f16_to_f32(blk.m);
    const uint32_t qh = load_qh(blk.qh);
    for (int j = 0; j < kQBlock; ++j) {
      y[i * kQBlock + j] = static_cast<float>(q5_value(blk.qs, qh, j)) * d + m;
      if (b != nullptr) b[i * kQBlock + j] = -m;
    }
  }
}

void quantize_q5_1(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockQ5_1 blk{};
    float lo, hi;
    min_max(x, kQBlock, &lo, &hi);
    const float d = (hi - lo) / 31.0f;
    blk.d = f32_to_f16(d);
    blk.m = f32_to_f16(lo);
    int q[kQBlock] = {};
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d) || !f16_finite(blk.m)) {
      blk.d = f16_nan();
    } else {
      const float id = d != 0.0f ? 1.0f / d : 0.0f;
      // ggml's truncating cast to uint8 (no clamp: (x - min) * id + 0.5 stays below 32).
      for (int j = 0; j < kQBlock; ++j) q[j] = static_cast<uint8_t>((x[j] - lo) * id + 0.5f);
    }
    pack_q5(q, blk.qs, blk.qh);
    store_block(blocks, i, blk);
  }
}

// ---- IQ4_NL: x = d * kIq4Values[q] ----

void dequantize_iq4_nl(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i) {
    const auto blk = load_block<BlockIQ4_NL>(blocks, i);
    const float d = f16_to_f32(blk.d);
    for (int j = 0; j < kQBlock; ++j) {
      y[i * kQBlock + j] = d * static_cast<float>(kIq4Values[nibble(blk.qs, j)]);
    }
  }
}

void quantize_iq4_nl(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQBlock; ++i, x += kQBlock) {
    BlockIQ4_NL blk{};
    uint8_t level[kQBlock];
    const float d = fit_grid(x, kQBlock, kIq4Values, 16, level);
    blk.d = f32_to_f16(d);
    if (!all_finite(x, kQBlock) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
      std::fill(level, level + kQBlock, 8);
    } else {
      // The levels again with the scale as stored.
      assign_grid(x, kQBlock, f16_to_f32(blk.d), kIq4Values, 16, level);
    }
    for (int j = 0; j < kQBlock / 2; ++j) {
      blk.qs[j] = static_cast<uint8_t>(level[j] | (level[j + 16] << 4));
    }
    store_block(blocks, i, blk);
  }
}

}  // namespace kvpack::model::codec
