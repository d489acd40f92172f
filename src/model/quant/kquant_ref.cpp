// Scalar codecs of the 256-value super-block types: Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS
// (codecs.h). Dequantization follows ggml's expressions (a group's scale times the super-block's
// f16 scale first, then times the quant, then minus the min), which are exact but for the one
// final subtraction. The quantizers are kvpack's own (quant/fit.h): fit each group, quantize the
// group scales against the super-block scale, then assign every value again with the scales as
// stored.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "base/half.h"
#include "model/quant/codecs.h"
#include "model/quant/fit.h"

namespace kvpack::model::codec {
namespace {

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

// Q2_K / Q3_K: the 2-bit field of value v (= 128 h + 32 s + l) is bits 2s of qs[32 h + l].
int q2_field(const uint8_t* qs, int v) {
  return (qs[32 * (v / 128) + v % 32] >> (2 * ((v % 128) / 32))) & 3;
}
void set_q2_field(uint8_t* qs, int v, int q) {
  qs[32 * (v / 128) + v % 32] |= static_cast<uint8_t>(q << (2 * ((v % 128) / 32)));
}
// Q4_K / Q5_K: value v (= 64 c + 32 half + l) is nibble `half` of qs[32 c + l].
int q4_field(const uint8_t* qs, int v) {
  const uint8_t b = qs[32 * (v / 64) + v % 32];
  return (v % 64) < 32 ? b & 15 : b >> 4;
}
void set_q4_field(uint8_t* qs, int v, int q) {
  qs[32 * (v / 64) + v % 32] |= static_cast<uint8_t>((v % 64) < 32 ? q : q << 4);
}

// A super-block's group scales quantized to integers in [lo, hi] against one scale d = the
// largest scale / hi (or the most negative / lo when signed). Returns d; q[] the integers.
float quantize_scales(const float* s, int n, int lo, int hi, int* q) {
  float amax = 0.0f, max = 0.0f;
  for (int g = 0; g < n; ++g) {
    if (amax < std::fabs(s[g])) {
      amax = std::fabs(s[g]);
      max = s[g];
    }
  }
  const float d = max == 0.0f ? 0.0f
                  : lo < 0    ? max / static_cast<float>(lo)
                              : max / static_cast<float>(hi);
  // Against d as stored: where f16 rounds it coarsely (subnormal), the integers absorb the error.
  const float stored = f16_to_f32(f32_to_f16(d));
  const float id = stored != 0.0f ? 1.0f / stored : 0.0f;
  for (int g = 0; g < n; ++g) q[g] = std::clamp(nearest(s[g] * id), lo, hi);
  return d;
}

// Level of x for a stored group scale D (and min M, x ~ D * l - M), clamped to [lo, hi].
int requantize(float x, float D, float M, int lo, int hi) {
  return D != 0.0f ? std::clamp(nearest((x + M) / D), lo, hi) : std::clamp(0, lo, hi);
}

}  // namespace

// ---- Q2_K ----

void dequantize_q2_k(const uint8_t* blocks, float* y, float* b, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockQ2_K>(blocks, i);
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    for (int v = 0; v < kQK; ++v) {
      const uint8_t sc = blk.scales[v / 16];
      const float dl = d * static_cast<float>(sc & 15), ml = dmin * static_cast<float>(sc >> 4);
      y[v] = dl * static_cast<float>(q2_field(blk.qs, v)) - ml;
      if (b != nullptr) b[i * kQK + v] = ml;
    }
  }
}

void quantize_q2_k(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockQ2_K blk{};
    float s[16], m[16];
    uint8_t l[16];
    for (int g = 0; g < 16; ++g) s[g] = fit_affine(x + 16 * g, 16, 3, &m[g], l);
    int qs[16], qm[16];
    const float d = quantize_scales(s, 16, 0, 15, qs), dmin = quantize_scales(m, 16, 0, 15, qm);
    blk.d = f32_to_f16(d);
    blk.dmin = f32_to_f16(dmin);
    if (!all_finite(x, kQK) || !f16_finite(blk.d) || !f16_finite(blk.dmin)) {
      blk.d = f16_nan();
    } else {
      for (int g = 0; g < 16; ++g) blk.scales[g] = static_cast<uint8_t>(qs[g] | (qm[g] << 4));
      for (int v = 0; v < kQK; ++v) {
        const float D = f16_to_f32(blk.d) * static_cast<float>(qs[v / 16]);
        const float M = f16_to_f32(blk.dmin) * static_cast<float>(qm[v / 16]);
        set_q2_field(blk.qs, v, requantize(x[v], D, M, 0, 3));
      }
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q3_K ----

void dequantize_q3_k(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockQ3_K>(blocks, i);
    const float d = f16_to_f32(blk.d);
    for (int v = 0; v < kQK; ++v) {
      const float dl = d * static_cast<float>(q3k_scale(v / 16, blk.scales));
      const int hbit = (blk.hmask[v % 32] >> (v / 32)) & 1;
      y[v] = dl * static_cast<float>(q2_field(blk.qs, v) - (hbit ? 0 : 4));
    }
  }
}

void quantize_q3_k(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockQ3_K blk{};
    float s[16];
    int8_t l[16];
    for (int g = 0; g < 16; ++g) s[g] = fit_signed(x + 16 * g, 16, -4, 3, l);
    int q[16];
    blk.d = f32_to_f16(quantize_scales(s, 16, -32, 31, q));
    if (!all_finite(x, kQK) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
    } else {
      for (int g = 0; g < 16; ++g) {
        const int u = q[g] + 32;  // 6 bits
        blk.scales[g % 8] |= static_cast<uint8_t>((u & 15) << (g < 8 ? 0 : 4));
        blk.scales[8 + g % 4] |= static_cast<uint8_t>((u >> 4) << (2 * (g / 4)));
      }
      for (int v = 0; v < kQK; ++v) {
        const float D = f16_to_f32(blk.d) * static_cast<float>(q[v / 16]);
        const int u = requantize(x[v], D, 0.0f, -4, 3) + 4;  // 0..7
        set_q2_field(blk.qs, v, u & 3);
        blk.hmask[v % 32] |= static_cast<uint8_t>((u >> 2) << (v / 32));
      }
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q4_K / Q5_K ----

namespace {

void pack_scale_min_k4(const int* sc, const int* mn, uint8_t* s) {
  for (int g = 0; g < 8; ++g) {
    if (g < 4) {
      s[g] |= static_cast<uint8_t>(sc[g]);
      s[g + 4] |= static_cast<uint8_t>(mn[g]);
    } else {
      s[g + 4] = static_cast<uint8_t>((sc[g] & 15) | ((mn[g] & 15) << 4));
      s[g - 4] |= static_cast<uint8_t>((sc[g] >> 4) << 6);
      s[g] |= static_cast<uint8_t>((mn[g] >> 4) << 6);
    }
  }
}

// Q4_K and Q5_K share everything but the fifth bit: fit, quantize the scales, and return each
// value's level in L (0..nmax). False for a block to store with a NaN scale.
bool quantize_k_affine(const float* x, int nmax, uint16_t* d, uint16_t* dmin, uint8_t* scales,
                       uint8_t* L) {
  float s[8], m[8];
  for (int g = 0; g < 8; ++g) s[g] = fit_affine(x + 32 * g, 32, nmax, &m[g], L + 32 * g);
  int qs[8], qm[8];
  *d = f32_to_f16(quantize_scales(s, 8, 0, 63, qs));
  *dmin = f32_to_f16(quantize_scales(m, 8, 0, 63, qm));
  if (!all_finite(x, kQK) || !f16_finite(*d) || !f16_finite(*dmin)) {
    *d = f16_nan();
    std::memset(L, 0, kQK);
    return false;
  }
  pack_scale_min_k4(qs, qm, scales);
  for (int v = 0; v < kQK; ++v) {
    const float D = f16_to_f32(*d) * static_cast<float>(qs[v / 32]);
    const float M = f16_to_f32(*dmin) * static_cast<float>(qm[v / 32]);
    L[v] = static_cast<uint8_t>(requantize(x[v], D, M, 0, nmax));
  }
  return true;
}

}  // namespace

void dequantize_q4_k(const uint8_t* blocks, float* y, float* b, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockQ4_K>(blocks, i);
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    for (int v = 0; v < kQK; ++v) {
      int sc, mn;
      q4k_scale_min(v / 32, blk.scales, &sc, &mn);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(mn);
      y[v] = dl * static_cast<float>(q4_field(blk.qs, v)) - ml;
      if (b != nullptr) b[i * kQK + v] = ml;
    }
  }
}

void quantize_q4_k(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockQ4_K blk{};
    uint8_t L[kQK];
    quantize_k_affine(x, 15, &blk.d, &blk.dmin, blk.scales, L);
    for (int v = 0; v < kQK; ++v) set_q4_field(blk.qs, v, L[v]);
    store_block(blocks, i, blk);
  }
}

void dequantize_q5_k(const uint8_t* blocks, float* y, float* b, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockQ5_K>(blocks, i);
    const float d = f16_to_f32(blk.d), dmin = f16_to_f32(blk.dmin);
    for (int v = 0; v < kQK; ++v) {
      int sc, mn;
      q4k_scale_min(v / 32, blk.scales, &sc, &mn);
      const float dl = d * static_cast<float>(sc), ml = dmin * static_cast<float>(mn);
      const int high = (blk.qh[v % 32] >> (v / 32)) & 1;  // bit 2c (+1 for the high half)
      y[v] = dl * static_cast<float>(q4_field(blk.qs, v) + 16 * high) - ml;
      if (b != nullptr) b[i * kQK + v] = ml;
    }
  }
}

void quantize_q5_k(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockQ5_K blk{};
    uint8_t L[kQK];
    quantize_k_affine(x, 31, &blk.d, &blk.dmin, blk.scales, L);
    for (int v = 0; v < kQK; ++v) {
      set_q4_field(blk.qs, v, L[v] & 15);
      blk.qh[v % 32] |= static_cast<uint8_t>((L[v] >> 4) << (v / 32));
    }
    store_block(blocks, i, blk);
  }
}

// ---- Q6_K: value v = 128 h + 32 k + l: low 4 bits in ql[64 h + 32 (k % 2) + l] (nibble k / 2),
// high 2 bits in qh[32 h + l] at bit 2k ----

void dequantize_q6_k(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockQ6_K>(blocks, i);
    const float d = f16_to_f32(blk.d);
    for (int v = 0; v < kQK; ++v) {
      const int h = v / 128, k = (v % 128) / 32, l = v % 32;
      const uint8_t lo = blk.ql[64 * h + 32 * (k % 2) + l];
      const int q =
          ((k < 2 ? lo & 15 : lo >> 4) | (((blk.qh[32 * h + l] >> (2 * k)) & 3) << 4)) - 32;
      y[v] = d * static_cast<float>(blk.scales[v / 16]) * static_cast<float>(q);
    }
  }
}

void quantize_q6_k(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockQ6_K blk{};
    float s[16];
    int8_t l[16];
    for (int g = 0; g < 16; ++g) s[g] = fit_signed(x + 16 * g, 16, -32, 31, l);
    int q[16];
    blk.d = f32_to_f16(quantize_scales(s, 16, -128, 127, q));
    if (!all_finite(x, kQK) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
    } else {
      for (int g = 0; g < 16; ++g) blk.scales[g] = static_cast<int8_t>(q[g]);
      for (int v = 0; v < kQK; ++v) {
        const float D = f16_to_f32(blk.d) * static_cast<float>(q[v / 16]);
        const int u = requantize(x[v], D, 0.0f, -32, 31) + 32;  // 0..63
        const int h = v / 128, k = (v % 128) / 32, lv = v % 32;
        blk.ql[64 * h + 32 * (k % 2) + lv] |= static_cast<uint8_t>((u & 15) << (k < 2 ? 0 : 4));
        blk.qh[32 * h + lv] |= static_cast<uint8_t>((u >> 4) << (2 * k));
      }
    }
    store_block(blocks, i, blk);
  }
}

// ---- IQ4_XS: group g's 32 values are qs[16 g .. 16 g + 15] in IQ4_NL's nibble order ----

void dequantize_iq4_xs(const uint8_t* blocks, float* y, float*, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, y += kQK) {
    const auto blk = load_block<BlockIQ4_XS>(blocks, i);
    const float d = f16_to_f32(blk.d);
    for (int v = 0; v < kQK; ++v) {
      const int g = v / 32, j = v % 32;
      const float dl =
          d * static_cast<float>(iq4xs_scale(g, blk.scales_l[g / 2], blk.scales_h) - 32);
      const uint8_t b = blk.qs[16 * g + j % 16];
      y[v] = dl * static_cast<float>(kIq4Values[j < 16 ? b & 15 : b >> 4]);
    }
  }
}

void quantize_iq4_xs(const float* x, uint8_t* blocks, int64_t n) {
  for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
    BlockIQ4_XS blk{};
    float s[8];
    uint8_t L[kQK];
    for (int g = 0; g < 8; ++g) s[g] = fit_grid(x + 32 * g, 32, kIq4Values, 16, L + 32 * g);
    int q[8];
    blk.d = f32_to_f16(quantize_scales(s, 8, -32, 31, q));
    if (!all_finite(x, kQK) || !f16_finite(blk.d)) {
      blk.d = f16_nan();
      std::memset(blk.qs, 0x88, sizeof(blk.qs));
    } else {
      for (int g = 0; g < 8; ++g) {
        const int u = q[g] + 32;
        blk.scales_l[g / 2] |= static_cast<uint8_t>((u & 15) << (4 * (g % 2)));
        blk.scales_h |= static_cast<uint16_t>((u >> 4) << (2 * g));
        assign_grid(x + 32 * g, 32, f16_to_f32(blk.d) * static_cast<float>(q[g]), kIq4Values, 16,
                    L + 32 * g);
        for (int j = 0; j < 16; ++j) {
          blk.qs[16 * g + j] = static_cast<uint8_t>(L[32 * g + j] | (L[32 * g + 16 + j] << 4));
        }
      }
    }
    store_block(blocks, i, blk);
  }
}

}  // namespace kvpack::model::codec
