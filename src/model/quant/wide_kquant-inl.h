// The AVX-512 matvec of Q6_K (and of Q4_K / Q5_K with VNNI): 512-bit vectors, one super-block
// of a row in four of them, where the generic tile (quant/int_kernels-inl.h, TileK) runs eight
// 256-bit chunks and unpacks each row's scales through memory. A decode step is one matvec per
// weight matrix, so these types' decode speed is this loop's. Highway targets AVX3_DL (VNNI) and
// AVX3 (PMADDUBSW, e.g. Skylake-SP / Cascade Lake servers). Measured on AMD Zen 5, 2 threads:
// kHasWideMatvec's comment.
//
// Per super-block and row: four vectors of 64 weight bytes u, each times 64 activation bytes
// (int32 lanes of 4 products), scaled per lane by its group's scale (ScaledDot512, as the
// target's dot policy's ScaledDot), summed over the four. Q6_K's values come in value order; Q4_K /
// Q5_K's nibbles put groups (0, 2), (1, 3), (4, 6), (5, 7) in one vector each, so the activations
// are shuffled to match once per super-block for all the tile's rows.
//
// Bit-identical with TileK<Dec, Dot, R, 1> of the target's dot policy: the 16 int32 lanes are
// folded to 8 by adding lanes i and i + 8, which gives each of TileK's lanes its integer sum (lane
// i: the values at 4i .. 4i + 3 of every 32), exact; the min (or offset) sums are the same PMADDWD
// pairs as MinSums; the float steps are TileK's, in its order. tests/model/matmul_test.cpp's
// BatchEqualsMatvecBitForBit compares this matvec with the 4-token tiles bit for bit.
#if defined(KVPACK_MODEL_QUANT_WIDE_KQUANT_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_MODEL_QUANT_WIDE_KQUANT_INL_H_
#undef KVPACK_MODEL_QUANT_WIDE_KQUANT_INL_H_
#else
#define KVPACK_MODEL_QUANT_WIDE_KQUANT_INL_H_
#endif

#include <hwy/highway.h>

#include <cstddef>
#include <cstring>

#include "model/quant/blocks.h"
#include "model/quant/decode-inl.h"
#include "model/quant/int_dot-inl.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::model::HWY_NAMESPACE {
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3

// Which super-block types have the wide matvec: where it measured faster than TileK (Zen 5, 2
// threads: Q6_K 11 -> 24 GB/s with VNNI and 15.6 -> 18.7 without; Q5_K 24.8 -> 26 with VNNI,
// the same without; Q4_K with VNNI 40 -> 42 with both in 4-row tiles, 46.5 -> 53-55 in cache,
// where it had been slower, 18.5 against 22.6, before the matvec's rows were prefetched).
template <class Dec>
constexpr bool kHasWideMatvec = Dec::kType == GgmlType::Q6_K ||
                                ((Dec::kType == GgmlType::Q4_K || Dec::kType == GgmlType::Q5_K) &&
                                 HWY_TARGET == HWY_AVX3_DL);

// The zero-masked forms of the intrinsics below (maskz, all lanes on) are the same instructions;
// GCC 12's plain forms start from _mm512_undefined_epi32(), which -Wmaybe-uninitialized flags.
//
// acc + each int32 lane's 4 products u * x times the lane's scale sc (its format: ScaleLanes).
// AVX3_DL: EVEX VPDPBUSD then VPDPWSSD, as asm for the reason int_dot-inl.h gives. AVX3 (no
// VNNI): VPMADDUBSW then VPMADDWD, as DotMaddubs (pairs exact for u <= 63, |x| <= 127). The
// lanes' integers are the same either way.
HWY_INLINE __m512i ScaledDot512(__m512i acc, __m512i u, __m512i x, __m512i sc) {
#if HWY_TARGET == HWY_AVX3_DL
  __m512i sum = _mm512_setzero_si512();
  asm("%{evex%} vpdpbusd %2, %1, %0" : "+v"(sum) : "v"(u), "v"(x));
  asm("%{evex%} vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(sum), "v"(sc));
  return acc;
#else
  return _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(u, x), sc));
#endif
}

// One super-block of one row, decoded for the wide loop: four weight vectors, their per-lane
// scales (low int16 of each int32 lane, high one 0: DotVnni::ScaleLanes), the integer min or
// offset sums against the activations' group sums (MinSums' lanes), and the float scales.
struct WideBlock {
  __m512i u[4];
  __m512i sc[4];
  __m256i mins;
  float d;
  float dmin;
};

// Per-lane scales of vector v from 16 scale bytes (pshufb indices: lane group -> byte), in the
// dot's ScaleLanes format: VNNI the scale in the low int16 and 0 in the high one, PMADDWD the
// scale in both.
HWY_INLINE __m512i SpreadScales(__m128i bytes, __m128i index, bool is_signed) {
  const __m128i picked = _mm_shuffle_epi8(bytes, index);
  const __m512i sc = is_signed ? _mm512_maskz_cvtepi8_epi32(0xFFFF, picked)
                               : _mm512_maskz_cvtepu8_epi32(0xFFFF, picked);
  const __m512i low = _mm512_and_si512(sc, _mm512_set1_epi32(0xFFFF));
#if HWY_TARGET == HWY_AVX3_DL
  return low;
#else
  return _mm512_or_si512(low, _mm512_maskz_slli_epi32(0xFFFF, sc, 16));
#endif
}

// Q4_K / Q5_K: qs[32 c + l] holds value 64 c + l (low nibble) and 64 c + 32 + l (high), so
// the low and high nibbles of qs[0..63] are groups (0, 2) and (1, 3), of qs[64..127] (4, 6) and
// (5, 7). bsum: the activations' 8 group sums of this super-block.
template <bool kFive>
HWY_INLINE void WideQ45K(const uint8_t* b, const int16_t* bsum, WideBlock& w) {
  const uint8_t* qs = b + (kFive ? offsetof(BlockQ5_K, qs) : offsetof(BlockQ4_K, qs));
  const __m512i low = _mm512_set1_epi8(15);
  const __m512i q0 = _mm512_loadu_si512(qs), q1 = _mm512_loadu_si512(qs + 64);
  w.u[0] = _mm512_and_si512(q0, low);
  w.u[1] = _mm512_and_si512(_mm512_srli_epi16(q0, 4), low);
  w.u[2] = _mm512_and_si512(q1, low);
  w.u[3] = _mm512_and_si512(_mm512_srli_epi16(q1, 4), low);
  if constexpr (kFive) {
    // The fifth bit of group g's value l is bit g of qh[l]: +16 where it is set.
    const __m512i qh = _mm512_maskz_broadcast_i64x4(
        0xFF, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(BlockQ5_K, qh))));
    const __m512i sixteen = _mm512_set1_epi8(16);
    constexpr uint8_t kBit[4][2] = {{0x01, 0x04}, {0x02, 0x08}, {0x10, 0x40}, {0x20, 0x80}};
    for (int v = 0; v < 4; ++v) {
      const __m512i bit =
          _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi8(static_cast<char>(kBit[v][0])),
                                   _mm256_set1_epi8(static_cast<char>(kBit[v][1])), 1);
      w.u[v] = _mm512_mask_add_epi8(w.u[v], _mm512_test_epi8_mask(qh, bit), w.u[v], sixteen);
    }
  }
  // q4k_scale_min for the 8 groups at once (DecQ45K::Scales).
  const uint8_t* p = b + offsetof(BlockQ4_K, scales);
  const uint32_t w0 = Load32(p), w1 = Load32(p + 4), w2 = Load32(p + 8);
  constexpr uint32_t kSix = 0x3f3f3f3fu, kLow = 0x0f0f0f0fu, kTwo = 0x03030303u;
  const uint64_t sc = (w0 & kSix) | uint64_t{(w2 & kLow) | (((w0 >> 6) & kTwo) << 4)} << 32;
  const uint64_t mn = (w1 & kSix) | uint64_t{((w2 >> 4) & kLow) | (((w1 >> 6) & kTwo) << 4)} << 32;
  const __m128i sc8 = _mm_cvtsi64_si128(static_cast<long long>(sc));
  // pshufb indices: vector v's lanes 0-7 and 8-15 take its two groups' scales.
  const __m128i index[4] = {_mm_set_epi64x(0x0202020202020202, 0x0000000000000000),
                            _mm_set_epi64x(0x0303030303030303, 0x0101010101010101),
                            _mm_set_epi64x(0x0606060606060606, 0x0404040404040404),
                            _mm_set_epi64x(0x0707070707070707, 0x0505050505050505)};
  for (int v = 0; v < 4; ++v) w.sc[v] = SpreadScales(sc8, index[v], false);
  const __m128i mn16 = _mm_cvtepu8_epi16(_mm_cvtsi64_si128(static_cast<long long>(mn)));
  const __m128i bs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bsum));
  w.mins = _mm256_zextsi128_si256(_mm_madd_epi16(mn16, bs));
  w.d = HalfAt(b);
  w.dmin = HalfAt(b + 2);
}

// Q6_K: for half h, the low nibbles of ql[64 h .. 64 h + 63] are values 128 h + 0..63 and the
// high nibbles 128 h + 64..127, in order; the two high bits of value 128 h + 32 k + l sit at bit
// 2 k of qh[32 h + l]. Scales: 16 signed bytes, one per 16 values, offset 32 (bsum: 16 sums).
HWY_INLINE void WideQ6K(const uint8_t* b, const int16_t* bsum, WideBlock& w) {
  const __m512i low = _mm512_set1_epi8(15), two = _mm512_set1_epi8(3);
  // Per 16-bit word, the shift taking bits 2k of qh to the bottom: k = 0 | 1 and 2 | 3.
  const __m512i shift_lo =
      _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi16(0), _mm256_set1_epi16(2), 1);
  const __m512i shift_hi =
      _mm512_maskz_inserti64x4(0xFF, _mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
  for (int h = 0; h < 2; ++h) {
    const __m512i ql = _mm512_loadu_si512(b + offsetof(BlockQ6_K, ql) + 64 * h);
    const __m512i qh = _mm512_maskz_broadcast_i64x4(
        0xFF,
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + offsetof(BlockQ6_K, qh) + 32 * h)));
    const __m512i hi_lo = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_lo), two);
    const __m512i hi_hi = _mm512_and_si512(_mm512_srlv_epi16(qh, shift_hi), two);
    w.u[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, low), _mm512_slli_epi16(hi_lo, 4));
    w.u[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), low),
                                     _mm512_slli_epi16(hi_hi, 4));
  }
  const __m128i sc8 =
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + offsetof(BlockQ6_K, scales)));
  for (int v = 0; v < 4; ++v) {
    // Lanes 4j .. 4j + 3 of vector v: group 4 v + j.
    const long long g = 4 * v;
    const __m128i index = _mm_set_epi64x(((g + 3) * 0x01010101LL) << 32 | (g + 2) * 0x01010101LL,
                                         ((g + 1) * 0x01010101LL) << 32 | g * 0x01010101LL);
    w.sc[v] = SpreadScales(sc8, index, true);
  }
  // Offset 32: mn_g = 32 sc_g (int16), times the group sums in MinSums' PMADDWD pairs.
  const __m256i mn16 = _mm256_slli_epi16(_mm256_cvtepi8_epi16(sc8), 5);
  w.mins = _mm256_madd_epi16(mn16, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsum)));
  w.d = HalfAt(b + offsetof(BlockQ6_K, d));
  w.dmin = 0.0f;
}

// The activations of one super-block in the order Dec's weight vectors hold their values.
template <class Dec>
HWY_INLINE void WideActivations(const int8_t* xb, __m512i (&x)[4]) {
  for (int v = 0; v < 4; ++v) x[v] = _mm512_loadu_si512(xb + 64 * v);
  if constexpr (Dec::kType != GgmlType::Q6_K) {
    // The nibbles' group order: (0, 2), (1, 3), (4, 6), (5, 7).
    const __m512i x01 = x[0], x23 = x[1], x45 = x[2], x67 = x[3];
    x[0] = _mm512_maskz_shuffle_i64x2(0xFF, x01, x23, 0x44);
    x[1] = _mm512_maskz_shuffle_i64x2(0xFF, x01, x23, 0xEE);
    x[2] = _mm512_maskz_shuffle_i64x2(0xFF, x45, x67, 0x44);
    x[3] = _mm512_maskz_shuffle_i64x2(0xFF, x45, x67, 0xEE);
  }
}

// One row's super-block against activations x (WideActivations) and their group sums bsum:
// TileK's isum in its 8 lanes, the min or offset sums (MinSums' lanes) and the float scales,
// for AddSuperBlock.
struct WideDot {
  VI32 isum;
  VI32 mins;
  float d;
  float dmin;
};
template <class Dec>
HWY_INLINE WideDot WideSuperBlock(const uint8_t* blk, const int16_t* bsum, const __m512i (&x)[4]) {
  static_assert(kHasWideMatvec<Dec>);
  WideBlock wb;
  if constexpr (Dec::kType == GgmlType::Q6_K) {
    WideQ6K(blk, bsum, wb);
  } else {
    WideQ45K<Dec::kType == GgmlType::Q5_K>(blk, bsum, wb);
  }
  // Two chains of two: VPDPWSSD's latency, not its throughput, would bound one chain of four.
  __m512i isum[2];
  for (int c = 0; c < 2; ++c) {
    isum[c] = ScaledDot512(_mm512_setzero_si512(), wb.u[2 * c], x[2 * c], wb.sc[2 * c]);
    isum[c] = ScaledDot512(isum[c], wb.u[2 * c + 1], x[2 * c + 1], wb.sc[2 * c + 1]);
  }
  const __m512i both = _mm512_add_epi32(isum[0], isum[1]);
  const __m256i sum8 = _mm256_add_epi32(_mm512_maskz_extracti64x4_epi64(0xFF, both, 0),
                                        _mm512_maskz_extracti64x4_epi64(0xFF, both, 1));
  return WideDot{VI32{sum8}, VI32{wb.mins}, wb.d, wb.dmin};
}

#else
template <class Dec>
constexpr bool kHasWideMatvec = false;
#endif  // HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX3

}  // namespace kvpack::model::HWY_NAMESPACE
HWY_AFTER_NAMESPACE();

#endif  // include guard
