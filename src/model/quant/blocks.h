// ggml's block layouts for the weight types kvpack computes with, and the activation blocks
// their integer dot products use (q8_0, q8_K). Every field is little-endian; `half` fields are
// IEEE f16 bit patterns. docs/weights.md draws each layout; the unpacking helpers below are shared
// by the scalar reference (quant/*_ref.cpp) and the SIMD kernels, so the bit packing of the
// K-quant scales is written down once.
#pragma once

#include <cstdint>

namespace kvpack::model {

// Values per block of the 32-value types and per K-quant super-block.
inline constexpr int kQBlock = 32;
inline constexpr int kQK = 256;

// x = qs[j] * d.
struct BlockQ8_0 {
  uint16_t d;  // f16 scale
  int8_t qs[kQBlock];
};
static_assert(sizeof(BlockQ8_0) == 34);

// x = (q - 8) * d; value j < 16 is the low nibble of qs[j], value j >= 16 the high nibble of
// qs[j - 16] (the same nibble order for Q4_1, Q5_0, Q5_1 and IQ4_NL).
struct BlockQ4_0 {
  uint16_t d;
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockQ4_0) == 18);

// x = q * d + m.
struct BlockQ4_1 {
  uint16_t d, m;
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockQ4_1) == 20);

// x = (q - 16) * d, q = nibble | (bit j of qh, a little-endian u32) << 4.
struct BlockQ5_0 {
  uint16_t d;
  uint8_t qh[4];
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockQ5_0) == 22);

// x = q * d + m, q as Q5_0.
struct BlockQ5_1 {
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

// x = d * kIq4Values[nibble].
struct BlockIQ4_NL {
  uint16_t d;
  uint8_t qs[kQBlock / 2];
};
static_assert(sizeof(BlockIQ4_NL) == 18);

// The 16 levels of IQ4_NL / IQ4_XS (a non-uniform 4-bit grid, denser near zero).
inline constexpr int8_t kIq4Values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                          1,    13,   25,  38,  53,  69,  89,  113};

// Q2_K: 16 groups of 16 values. Value j: group g = j / 16, 2-bit q from qs (below),
// x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4).
struct BlockQ2_K {
  uint8_t scales[kQK / 16];
  uint8_t qs[kQK / 4];
  uint16_t d, dmin;
};
static_assert(sizeof(BlockQ2_K) == 84);

// Q3_K: 16 groups of 16 values with 6-bit signed scales (q3k_scale), 2 low bits of q in qs as
// Q2_K and the third bit in hmask: x = d * scale * (q2 - (hbit ? 0 : 4)).
struct BlockQ3_K {
  uint8_t hmask[kQK / 8];
  uint8_t qs[kQK / 4];
  uint8_t scales[12];
  uint16_t d;
};
static_assert(sizeof(BlockQ3_K) == 110);

// Q4_K: 8 groups of 32 values with 6-bit scales and mins (q4k_scale_min):
// x = d * scale * q - dmin * min. Values 64c .. 64c+31 are the low nibbles of qs[32c .. 32c+31],
// values 64c+32 .. 64c+63 their high nibbles.
struct BlockQ4_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ4_K) == 144);

// Q5_K: Q4_K plus a fifth bit: value 64c + l (l < 32) takes bit 2c of qh[l], value 64c + 32 + l
// bit 2c + 1.
struct BlockQ5_K {
  uint16_t d, dmin;
  uint8_t scales[12];
  uint8_t qh[kQK / 8];
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_K) == 176);

// Q6_K: 16 groups of 16 values with int8 scales: x = d * scales[g] * (q - 32), q 6 bits (below).
struct BlockQ6_K {
  uint8_t ql[kQK / 2];
  uint8_t qh[kQK / 4];
  int8_t scales[kQK / 16];
  uint16_t d;
};
static_assert(sizeof(BlockQ6_K) == 210);

// IQ4_XS: 8 groups of 32 values, each an IQ4_NL block without its own f16 scale but with a 6-bit
// one (iq4xs_scale): x = d * (scale - 32) * kIq4Values[nibble].
struct BlockIQ4_XS {
  uint16_t d;
  uint16_t scales_h;           // 2 high bits of each group's scale
  uint8_t scales_l[kQK / 64];  // 4 low bits of each group's scale
  uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockIQ4_XS) == 136);

// Activations of the K-quant dot products: x = d * qs[j], with the sums of each 16 quants.
struct BlockQ8_K {
  float d;
  int8_t qs[kQK];
  int16_t bsums[kQK / 16];
};
static_assert(sizeof(BlockQ8_K) == 292);

// ---- unpacking shared by the reference and the kernels ----

// Q4_K / Q5_K: 6-bit scale and min of group g (0..7) from the 12 packed bytes. Groups 0-3 keep
// theirs in the low 6 bits of bytes g and g + 4; groups 4-7 in the nibbles of byte g + 4 plus the
// top 2 bits of bytes g - 4 (scale) and g (min).
inline void q4k_scale_min(int g, const uint8_t* s, int* scale, int* min) {
  if (g < 4) {
    *scale = s[g] & 63;
    *min = s[g + 4] & 63;
  } else {
    *scale = (s[g + 4] & 15) | ((s[g - 4] >> 6) << 4);
    *min = (s[g + 4] >> 4) | ((s[g] >> 6) << 4);
  }
}

// Q3_K: signed scale of group g (0..15): 4 low bits from the nibbles of bytes 0-7 (groups 0-7
// low nibbles, 8-15 high nibbles), 2 high bits from byte 8 + g % 4 at bit 2 * (g / 4), minus 32.
inline int q3k_scale(int g, const uint8_t* s) {
  const int lo = g < 8 ? s[g] & 15 : s[g - 8] >> 4;
  const int hi = (s[8 + g % 4] >> (2 * (g / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}

// IQ4_XS: the 6-bit scale of group g (0..7), without the -32.
inline int iq4xs_scale(int g, uint8_t l_byte_pair, uint16_t scales_h) {
  return ((l_byte_pair >> (4 * (g % 2))) & 15) | (((scales_h >> (2 * g)) & 3) << 4);
}

}  // namespace kvpack::model
