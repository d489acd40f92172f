// Per-target weight decoders of the integer kernels (quant/int_kernels-inl.h): each turns ggml's
// bytes (quant/blocks.h) into vectors of weight bytes in value order plus the block's scales, so
// the kernels stay type-agnostic. Two families:
//
//  Super-block types (Q2_K .. Q6_K): per 256 values, integer group scales and mins (Scales) and
//  unsigned quants u in [0, 63] (Chunk<C>: values C*kW .. C*kW + kW - 1). Each type is written
//    x = d * sc_g * u - dmin * mn_g   (kMin: Q2_K, Q4_K, Q5_K), or
//    x = d * sc_g * (u - off)         (kOffset: Q3_K off 4, Q6_K off 32; mn_g = off * sc_g),
//  so a dot product with q8_K activations (scale dx, quants q, sums of 16 bsum_g) is
//    dx * (d * sum_g sc_g sum_{j in g} u_j q_j  -  {dmin | d} * sum_g mn_g bsum_g).
//
//  32-value block types (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, and IQ4_XS's 32-value groups): per
//  block, kVecs = 32 / kW vectors of bytes and a float scale d (and min m):
//    unsigned: x = d * (u - off) (+ m)    signed (Q8_0, IQ4): x = d * w, w = int8.
//  The kernels remove an offset through the accumulator's start (-off * sum of 4 quants), and
//  give signed weights to VNNI as u = w + 128 (offset 128), to PMADDUBSW by the sign trick.
//
// Every decoder reproduces dequantize_row_ref's integers exactly; tests/model/matmul_test.cpp
// runs random bytes through every one of them on every target.
#if defined(KVPACK_MODEL_QUANT_DECODE_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_QUANT_DECODE_INL_H_
#undef KVPACK_MODEL_QUANT_DECODE_INL_H_
#else
#define KVPACK_MODEL_QUANT_DECODE_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstring>

#include "base/half.h"
#include "model/quant/blocks.h"
#include "model/quant/int_dot-inl.h"
#include "model/quant_ref.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors: matmul.cpp's generic path instead

HWY_INLINE float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  return _cvtsh_ss(h);  // F16C: exact, like f16_to_f32
#else
  return f16_to_f32(h);
#endif
}

// Bits [kFrom, kFrom + width) of every byte moved to start at bit kTo (other bits garbage: the
// caller masks).
template <int kFrom, int kTo>
HWY_INLINE VU8 MoveBits(VU8 v) {
  if constexpr (kFrom > kTo) {
    return hn::ShiftRight<kFrom - kTo>(v);
  } else if constexpr (kFrom < kTo) {
    return hn::ShiftLeft<kTo - kFrom>(v);
  } else {
    return v;
  }
}

HWY_INLINE VU8 Bytes(uint8_t b) {
  return hn::Set(DU8(), b);
}

// ---------------------------------------------------------------------------------------------
// Super-block types.

struct SuperScales {
  HWY_ALIGN int32_t sc[16];  // per group, in the dot policy's lane format (ScaleLanes)
  HWY_ALIGN int16_t mn[16];  // per group: its min (kMin) or off * scale (offset types)
  float d = 0.0f;            // the super-block's scale
  float dmin = 0.0f;         // its min scale (kMin)
};

// s.sc and s.mn from the n group scales sc8 (int8, or uint8 minus `bias`) and either the n mins
// min8 (uint8) or, when min8 is null, off * scale.
template <class Dot, bool kSigned>
HWY_INLINE void SetScales(SuperScales& s, int n, const void* sc8, int bias, const uint8_t* min8,
                          int off) {
  const DI32 d32;
  const hn::RebindToUnsigned<DI32> du32;
  const hn::Rebind<int16_t, DI32> d16;
  // 16 groups on 256-bit vectors: both halves of s.mn go out in one store, since MinSums reads
  // them with one 32-byte load, which a CPU cannot forward from two 16-byte stores (Zen 5, 2
  // threads, three runs each: avx2 Q6_K 10.0-10.4 -> 10.9-12.3 GB/s; Q2_K, Q3_K and the avx512
  // target within the runs' spread).
  constexpr bool kOneMinStore = hn::MaxLanes(d32) == 8;
  hn::Vec<decltype(d16)> mn_low;
  for (size_t k = 0; k < static_cast<size_t>(n); k += hn::Lanes(d32)) {
    VI32 sc;
    if constexpr (kSigned) {
      sc = hn::PromoteTo(
          d32, hn::LoadU(hn::Rebind<int8_t, DI32>(), static_cast<const int8_t*>(sc8) + k));
    } else {
      const auto u = hn::LoadU(hn::Rebind<uint8_t, DI32>(), static_cast<const uint8_t*>(sc8) + k);
      sc = hn::Sub(hn::BitCast(d32, hn::PromoteTo(du32, u)), hn::Set(d32, bias));
    }
    hn::Store(Dot::ScaleLanes(sc), d32, s.sc + k);
    const VI32 mn =
        min8 != nullptr
            ? hn::BitCast(d32,
                          hn::PromoteTo(du32, hn::LoadU(hn::Rebind<uint8_t, DI32>(), min8 + k)))
            : hn::Mul(sc, hn::Set(d32, off));
    const auto mn16 = hn::DemoteTo(d16, mn);
    if constexpr (kOneMinStore) {
      if (n == 16 && k == 0) {
        mn_low = mn16;
        continue;
      }
      if (n == 16) {
        const hn::Twice<decltype(d16)> d16x2;
        hn::StoreU(hn::Combine(d16x2, mn16, mn_low), d16x2, s.mn);
        continue;
      }
    }
    hn::StoreU(mn16, d16, s.mn + k);
  }
}

HWY_INLINE uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
HWY_INLINE uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The int32 lanes' scales for chunk C of a type with kGroup-value groups: lane i covers values
// C*kW + 4i .. + 3, group (C*kW + 4i) / kGroup.
template <int kGroup, int C>
HWY_INLINE VI32 ChunkScales(const SuperScales& s) {
  const DI32 d32;
  constexpr int kFirst = C * static_cast<int>(kW) / kGroup;
  constexpr int kLast = (C * static_cast<int>(kW) + static_cast<int>(kW) - 1) / kGroup;
  if constexpr (kFirst == kLast) {
    return hn::Set(d32, s.sc[kFirst]);
  } else {
    static_assert(kW == 32 && kGroup == 16);
    const hn::Half<DI32> dh;
    return hn::Combine(d32, hn::Set(dh, s.sc[kLast]), hn::Set(dh, s.sc[kFirst]));
  }
}

struct DecQ2K {
  static constexpr GgmlType kType = GgmlType::Q2_K;
  static constexpr int kBytes = sizeof(BlockQ2_K);
  static constexpr bool kMin = true;
  static constexpr int kGroup = 16;
  template <class Dot>
  static HWY_INLINE void Scales(const uint8_t* b, SuperScales& s) {
    // scales[g]: low nibble scale, high nibble min.
    HWY_ALIGN uint8_t sc[16], mn[16];
    for (int h = 0; h < 2; ++h) {
      const uint64_t w = Load64(b + 8 * h);
      const uint64_t lo = w & 0x0f0f0f0f0f0f0f0full, hi = (w >> 4) & 0x0f0f0f0f0f0f0f0full;
      std::memcpy(sc + 8 * h, &lo, 8);
      std::memcpy(mn + 8 * h, &hi, 8);
    }
    SetScales<Dot, false>(s, 16, sc, 0, mn, 0);
    s.d = HalfAt(b + offsetof(BlockQ2_K, d));
    s.dmin = HalfAt(b + offsetof(BlockQ2_K, dmin));
  }
  // Value v = 128 h + 32 s + l: bits 2s of qs[32 h + l].
  template <int C>
  static HWY_INLINE VU8 Chunk(const uint8_t* b) {
    constexpr int v = C * static_cast<int>(kW), h = v / 128, sh = (v % 128) / 32, l = v % 32;
    const VU8 q = hn::LoadU(DU8(), b + offsetof(BlockQ2_K, qs) + 32 * h + l);
    return hn::And(MoveBits<2 * sh, 0>(q), Bytes(3));
  }
};

struct DecQ3K {
  static constexpr GgmlType kType = GgmlType::Q3_K;
  static constexpr int kBytes = sizeof(BlockQ3_K);
  static constexpr bool kMin = false;  // offset 4
  static constexpr int kGroup = 16;
  template <class Dot>
  static HWY_INLINE void Scales(const uint8_t* b, SuperScales& s) {
    // Scale g: low 4 bits in the low (g < 8) or high nibble of byte g % 8, high 2 bits at bit
    // 2 (g / 4) of byte 8 + g % 4; stored plus 32.
    const uint8_t* p = b + offsetof(BlockQ3_K, scales);
    const uint32_t w0 = Load32(p), w1 = Load32(p + 4), w2 = Load32(p + 8);
    constexpr uint32_t kLow = 0x0f0f0f0fu, kTwo = 0x03030303u;
    const uint32_t words[4] = {(w0 & kLow) | ((w2 & kTwo) << 4),
                               (w1 & kLow) | (((w2 >> 2) & kTwo) << 4),
                               ((w0 >> 4) & kLow) | (((w2 >> 4) & kTwo) << 4),
                               ((w1 >> 4) & kLow) | (((w2 >> 6) & kTwo) << 4)};
    HWY_ALIGN uint8_t sc[16];
    std::memcpy(sc, words, 16);
    SetScales<Dot, false>(s, 16, sc, 32, nullptr, 4);
    s.d = HalfAt(b + offsetof(BlockQ3_K, d));
  }
  // u = 2 low bits as Q2_K, plus 4 when bit v / 32 of hmask[v % 32] is set.
  template <int C>
  static HWY_INLINE VU8 Chunk(const uint8_t* b) {
    constexpr int v = C * static_cast<int>(kW), h = v / 128, sh = (v % 128) / 32, l = v % 32;
    const VU8 q = hn::LoadU(DU8(), b + offsetof(BlockQ3_K, qs) + 32 * h + l);
    const VU8 m = hn::LoadU(DU8(), b + offsetof(BlockQ3_K, hmask) + l);
    return hn::Or(hn::And(MoveBits<2 * sh, 0>(q), Bytes(3)),
                  hn::And(MoveBits<v / 32, 2>(m), Bytes(4)));
  }
};

template <GgmlType T>
struct DecQ45K {
  static constexpr GgmlType kType = T;
  static constexpr bool kFive = T == GgmlType::Q5_K;
  static constexpr int kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  static constexpr int kQs = kFive ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs);
  static constexpr bool kMin = true;
  static constexpr int kGroup = 32;
  template <class Dot>
  static HWY_INLINE void Scales(const uint8_t* b, SuperScales& s) {
    // q4k_scale_min for all 8 groups at once: groups 0-3 in the low 6 bits of bytes 0-3 (scales)
    // and 4-7 (mins); groups 4-7 in the nibbles of bytes 8-11 plus the top 2 bits of bytes 0-3
    // (scales) and 4-7 (mins).
    const uint8_t* p = b + offsetof(BlockQ4_K, scales);
    const uint32_t w0 = Load32(p), w1 = Load32(p + 4), w2 = Load32(p + 8);
    constexpr uint32_t kSix = 0x3f3f3f3fu, kLow = 0x0f0f0f0fu, kTwo = 0x03030303u;
    const uint32_t sc[2] = {w0 & kSix, (w2 & kLow) | (((w0 >> 6) & kTwo) << 4)};
    const uint32_t mn[2] = {w1 & kSix, ((w2 >> 4) & kLow) | (((w1 >> 6) & kTwo) << 4)};
    SetScales<Dot, false>(s, 8, sc, 0, reinterpret_cast<const uint8_t*>(mn), 0);
    s.d = HalfAt(b);
    s.dmin = HalfAt(b + 2);
  }
  // Value v = 64 c + 32 half + l: nibble `half` of qs[32 c + l]; Q5_K's fifth bit is bit v / 32
  // of qh[l].
  template <int C>
  static HWY_INLINE VU8 Chunk(const uint8_t* b) {
    constexpr int v = C * static_cast<int>(kW), l = v % 32;
    const VU8 q = hn::LoadU(DU8(), b + kQs + 32 * (v / 64) + l);
    VU8 u = (v % 64) < 32 ? hn::And(q, Bytes(15)) : hn::ShiftRight<4>(q);
    if constexpr (kFive) {
      const VU8 h = hn::LoadU(DU8(), b + offsetof(BlockQ5_K, qh) + l);
      u = hn::Or(u, hn::And(MoveBits<v / 32, 4>(h), Bytes(16)));
    }
    return u;
  }
};
using DecQ4K = DecQ45K<GgmlType::Q4_K>;
using DecQ5K = DecQ45K<GgmlType::Q5_K>;

struct DecQ6K {
  static constexpr GgmlType kType = GgmlType::Q6_K;
  static constexpr int kBytes = sizeof(BlockQ6_K);
  static constexpr bool kMin = false;  // offset 32
  static constexpr int kGroup = 16;
  template <class Dot>
  static HWY_INLINE void Scales(const uint8_t* b, SuperScales& s) {
    SetScales<Dot, true>(s, 16, b + offsetof(BlockQ6_K, scales), 0, nullptr, 32);
    s.d = HalfAt(b + offsetof(BlockQ6_K, d));
  }
  // Value v = 128 h + 32 k + l: low 4 bits in nibble k / 2 of ql[64 h + 32 (k % 2) + l], high 2
  // bits at bit 2k of qh[32 h + l].
  template <int C>
  static HWY_INLINE VU8 Chunk(const uint8_t* b) {
    constexpr int v = C * static_cast<int>(kW), h = v / 128, k = (v % 128) / 32, l = v % 32;
    const VU8 lo = hn::LoadU(DU8(), b + 64 * h + 32 * (k % 2) + l);
    const VU8 hi = hn::LoadU(DU8(), b + offsetof(BlockQ6_K, qh) + 32 * h + l);
    return hn::Or(k < 2 ? hn::And(lo, Bytes(15)) : hn::ShiftRight<4>(lo),
                  hn::And(MoveBits<2 * k, 4>(hi), Bytes(0x30)));
  }
};

// ---------------------------------------------------------------------------------------------
// 32-value block types: Block(row, b, w, &d, &m) decodes block b of a row.

constexpr int kVecs = 32 / static_cast<int>(kW);

// 16 bytes of nibbles: values 0..15 the low nibbles, 16..31 the high ones.
HWY_INLINE void Nibbles(const uint8_t* qs, VU8* u) {
  if constexpr (kW == 32) {
    const hn::Half<DU8> dh;
    const auto v = hn::LoadU(dh, qs);
    u[0] = hn::Combine(DU8(), hn::ShiftRight<4>(v), hn::And(v, hn::Set(dh, 15)));
  } else {
    const VU8 v = hn::LoadU(DU8(), qs);
    u[0] = hn::And(v, Bytes(15));
    u[1] = hn::ShiftRight<4>(v);
  }
}

// The fifth bits of Q5_0 / Q5_1 (bit j of the little-endian u32 at qh is value j's) as 0 / 16.
HWY_INLINE void FifthBits(const uint8_t* qh, VU8* u) {
  uint32_t bits;
  std::memcpy(&bits, qh, 4);
  const VU8 all = hn::BitCast(DU8(), hn::Set(DI32(), static_cast<int32_t>(bits)));
  // Byte j takes byte j / 8 of the u32 (each 128-bit part holds all four), then bit j % 8.
  HWY_ALIGN static constexpr uint8_t kIndex[32] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,
                                                   2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3};
  HWY_ALIGN static constexpr uint8_t kBit[16] = {1, 2, 4, 8, 16, 32, 64, 128,
                                                 1, 2, 4, 8, 16, 32, 64, 128};
  const VU8 bit = hn::LoadDup128(DU8(), kBit);
  for (int i = 0; i < kVecs; ++i) {
    const VU8 b = hn::TableLookupBytes(all, hn::LoadU(DU8(), kIndex + kW * i));
    u[i] = hn::Or(u[i], hn::IfThenElseZero(hn::Ne(hn::And(b, bit), hn::Zero(DU8())), Bytes(16)));
  }
}

// IQ4 levels of 16 bytes of nibbles, as signed bytes.
HWY_INLINE void Iq4Levels(const uint8_t* qs, VI8* w) {
  VU8 n[kVecs];
  Nibbles(qs, n);
  HWY_ALIGN static constexpr int8_t kTable[16] = {
      kIq4Values[0],  kIq4Values[1],  kIq4Values[2],  kIq4Values[3], kIq4Values[4],  kIq4Values[5],
      kIq4Values[6],  kIq4Values[7],  kIq4Values[8],  kIq4Values[9], kIq4Values[10], kIq4Values[11],
      kIq4Values[12], kIq4Values[13], kIq4Values[14], kIq4Values[15]};
  const VI8 table = hn::LoadDup128(DI8(), kTable);
  for (int i = 0; i < kVecs; ++i) w[i] = hn::TableLookupBytes(table, hn::BitCast(DI8(), n[i]));
}

template <GgmlType T>
struct Dec32 {
  static constexpr GgmlType kType = T;
  static constexpr bool kSigned =
      T == GgmlType::Q8_0 || T == GgmlType::IQ4_NL || T == GgmlType::IQ4_XS;
  static constexpr bool kMin = T == GgmlType::Q4_1 || T == GgmlType::Q5_1;
  // What unsigned weights carry above their value (signed ones: see the kernel).
  static constexpr int kOffset = T == GgmlType::Q4_0 ? 8 : T == GgmlType::Q5_0 ? 16 : 0;
  static constexpr int kBytes = T == GgmlType::Q8_0     ? sizeof(BlockQ8_0)
                                : T == GgmlType::Q4_0   ? sizeof(BlockQ4_0)
                                : T == GgmlType::Q4_1   ? sizeof(BlockQ4_1)
                                : T == GgmlType::Q5_0   ? sizeof(BlockQ5_0)
                                : T == GgmlType::Q5_1   ? sizeof(BlockQ5_1)
                                : T == GgmlType::IQ4_NL ? sizeof(BlockIQ4_NL)
                                                        : sizeof(BlockIQ4_XS);

  // Unsigned types fill u, signed ones w.
  static HWY_INLINE void Block(const uint8_t* row, int64_t i, VU8* u, VI8* w, float* d, float* m) {
    if constexpr (T == GgmlType::IQ4_XS) {
      const uint8_t* b = row + (i / 8) * kBytes;
      const int g = static_cast<int>(i % 8);
      uint16_t scales_h;
      std::memcpy(&scales_h, b + offsetof(BlockIQ4_XS, scales_h), 2);
      const uint8_t scales_l = b[offsetof(BlockIQ4_XS, scales_l) + g / 2];
      *d = HalfAt(b) * static_cast<float>(iq4xs_scale(g, scales_l, scales_h) - 32);
      Iq4Levels(b + offsetof(BlockIQ4_XS, qs) + 16 * g, w);
    } else {
      Block32(row + i * kBytes, u, w, d, m);
    }
  }

  static HWY_INLINE void Block32(const uint8_t* b, VU8* u, VI8* w, float* d, float* m) {
    *d = HalfAt(b);
    if constexpr (T == GgmlType::Q8_0) {
      for (int v = 0; v < kVecs; ++v)
        w[v] = hn::LoadU(DI8(), reinterpret_cast<const int8_t*>(b + 2) + kW * v);
    } else if constexpr (T == GgmlType::IQ4_NL) {
      Iq4Levels(b + 2, w);
    } else if constexpr (T == GgmlType::Q4_0) {
      Nibbles(b + 2, u);
    } else if constexpr (T == GgmlType::Q4_1) {
      *m = HalfAt(b + 2);
      Nibbles(b + 4, u);
    } else if constexpr (T == GgmlType::Q5_0) {
      Nibbles(b + 6, u);
      FifthBits(b + 2, u);
    } else {
      static_assert(T == GgmlType::Q5_1);
      *m = HalfAt(b + 2);
      Nibbles(b + 8, u);
      FifthBits(b + 4, u);
    }
  }
};

#endif  // HWY_TARGET != HWY_SCALAR
}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
