// Per-target helper of the value kernels (cpu/value_kernels.cpp): the 256-bit tiles of the AVX2
// target (and of AVX3, which lacks AVX-512 VNNI). Every V format's codes are value planes of
// token quads (format/planes.h), so the 32 bytes at one place of a plane hold 8 channel slots x 4
// tokens at one bit position: a tile is 8 channels of one scale group, and per token quad it
// reads one 32-byte line per plane, turns it into int8 elements (q8: the codes; 4-bit and
// planes: PSHUFB of the format's 16-entry int8 table) and multiplies it by a broadcast of the
// quad's integer weights (int8_dot-inl.h):
//   q4, q4a: 8-bit weights x elements in -8..7 (no int16 pair can saturate), 16 channels a line;
//   q8, turbo: elements up to +-127 would saturate 8-bit weights' int16 pairs without VNNI, so
//     they are widened to int16 and meet 15-bit weights (DotS16, VPMADDWD or AVX-VNNI VPDPWSSD).
// Included by cpu/value_kernels.cpp after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_VALUE_TILES_AVX2_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_VALUE_TILES_AVX2_INL_H_
#undef KVPACK_ATTENTION_VALUE_TILES_AVX2_INL_H_
#else
#define KVPACK_ATTENTION_VALUE_TILES_AVX2_INL_H_
#endif

#include <hwy/highway.h>

// Per-target headers are included on every target's pass (their include guards toggle once per
// pass; an include skipped on one pass would make them skip the next).
#include "attention/cpu/int8_dot-inl.h"
#include "attention/cpu/value_weights-inl.h"

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>

#include <algorithm>

#include "attention/cpu/value_chunk.h"
#include "format/planes.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {

// Integer weight bits of the AVX2 tiles per format (see the header comment).
template <VCode C>
constexpr int kAvx2WeightBits = C == VCode::q4 || C == VCode::q4a ? 8 : 15;

// Where 8 channels from j0 (a multiple of 8) sit in a page's planes: the 32-byte line of token
// quad 0 and the bit position of each plane; quad tq's lines are tq strides further.
struct PlaneLines {
  const uint8_t* low;
  const uint8_t* high;  // turbo3's 1-bit plane of code bit 2
  __m128i low_shift, high_shift;
  size_t low_stride, high_stride;
};

template <VCode C>
HWY_INLINE PlaneLines LinesOf(const ValueChunk& b, const uint8_t* codes, int j0) {
  constexpr int p = kPlaneBits<C>;
  const TileLines& t = b.lines[j0 / 8];
  PlaneLines l{};
  l.low = codes + t.low;
  l.low_shift = _mm_cvtsi32_si128(t.low_shift);
  l.low_stride = static_cast<size_t>(b.d) * p / 2;  // d p / 8 slots of 4 bytes per quad
  if constexpr (C == VCode::turbo3) {
    l.high = codes + t.high;
    l.high_shift = _mm_cvtsi32_si128(t.high_shift);
    l.high_stride = static_cast<size_t>(b.d) / 2;
  }
  return l;
}

// The int8 elements of quad tq: lane 4i + k is channel j0 + i of token 4 tq + k.
template <VCode C>
HWY_INLINE __m256i Elements(const PlaneLines& l, int tq, __m256i table) {
  const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l.low + tq * l.low_stride));
  if constexpr (C == VCode::q8) return v;
  constexpr int kMask = (1 << kPlaneBits<C>)-1;
  // A 16-bit shift moves the next byte's bits into this byte's top, which the mask drops.
  __m256i x = _mm256_and_si256(_mm256_srl_epi16(v, l.low_shift), _mm256_set1_epi8(kMask));
  if constexpr (C == VCode::turbo3) {
    const __m256i h =
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l.high + tq * l.high_stride));
    const __m256i bit = _mm256_slli_epi16(_mm256_srl_epi16(h, l.high_shift), 2);
    x = _mm256_or_si256(x, _mm256_and_si256(bit, _mm256_set1_epi8(4)));
  }
  return _mm256_shuffle_epi8(table, x);
}

// acc[j0 .. j0 + 8) += scale * sums (+ mins) for one row.
template <bool kMins>
HWY_INLINE void AddEight(float* acc, __m256i sums, float scale, float mins) {
  __m256 base = _mm256_loadu_ps(acc);
  if constexpr (kMins) base = _mm256_add_ps(base, _mm256_set1_ps(mins));
  _mm256_storeu_ps(acc, _mm256_fmadd_ps(_mm256_cvtepi32_ps(sums), _mm256_set1_ps(scale), base));
}

// 16 channels, 8-bit weights (q4, q4a): the 32-byte line at j0 (j0 % 32 is 0 or 8) holds
// channels j0 + i in its low nibbles and j0 + 16 + i in its high ones, two accumulators a row.
// Without VNNI the products of 8 quads (u <= 255 times e in -8..7: at most 8 x 4080) are summed
// in int16 before widening, which halves the instructions per product.
template <VCode C, int R, bool kVnni>
HWY_INLINE void ByteTile(const ValueChunk& b, int j0, const ValueWeights& wt, float* acc,
                         size_t as) {
  const int g = GroupOf<C>(j0);
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.table)));
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  __m256i s[R][2];
  for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
  for (int page = 0; page < b.pages; ++page) {
    const PlaneLines l = LinesOf<C>(b, b.codes[page], j0);
    const uint8_t* w8[R];
    for (int r = 0; r < R; ++r) w8[r] = wt.hi[r][g] + page * b.T;
    for (int q0 = 0; q0 < b.T / 4; q0 += 8) {
      __m256i s16[R][2];  // no VNNI: int16 sums of up to 8 quads
      for (int r = 0; r < R; ++r) s16[r][0] = s16[r][1] = _mm256_setzero_si256();
      const int q1 = std::min(b.T / 4, q0 + 8);
      for (int tq = q0; tq < q1; ++tq) {
        const __m256i v =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(l.low + tq * l.low_stride));
        const __m256i e0 = _mm256_shuffle_epi8(table, _mm256_and_si256(v, low4));
        const __m256i e1 =
            _mm256_shuffle_epi8(table, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
        for (int r = 0; r < R; ++r) {
          const __m256i w = Broadcast4(w8[r] + 4 * tq);
          if constexpr (kVnni) {
            DotU8<true>(s[r][0], w, e0);
            DotU8<true>(s[r][1], w, e1);
          } else {
            s16[r][0] = _mm256_add_epi16(s16[r][0], _mm256_maddubs_epi16(w, e0));
            s16[r][1] = _mm256_add_epi16(s16[r][1], _mm256_maddubs_epi16(w, e1));
          }
        }
      }
      if constexpr (!kVnni) {
        const __m256i ones = _mm256_set1_epi16(1);
        for (int r = 0; r < R; ++r) {
          for (int h = 0; h < 2; ++h) {
            s[r][h] = _mm256_add_epi32(s[r][h], _mm256_madd_epi16(s16[r][h], ones));
          }
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    const float scale = wt.scale[r][g] * b.post;
    AddEight<C == VCode::q4a>(acc + r * as + j0, s[r][0], scale, wt.mins[r][g]);
    AddEight<C == VCode::q4a>(acc + r * as + j0 + 16, s[r][1], scale, wt.mins[r][g]);
  }
}

// The same with elements widened to int16 and 15-bit weights (q8, turbo). A lane of the int16
// products holds one channel's tokens 0-1 or 2-3 of the quad; the two are added at the end.
template <VCode C, int R, bool kVnni>
HWY_INLINE void WordTile(const ValueChunk& b, int j0, const ValueWeights& wt, float* acc,
                         size_t as) {
  const int g = GroupOf<C>(j0);
  const __m256i table =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.table)));
  __m256i s[R][2];
  for (int r = 0; r < R; ++r) s[r][0] = s[r][1] = _mm256_setzero_si256();
  for (int page = 0; page < b.pages; ++page) {
    const PlaneLines l = LinesOf<C>(b, b.codes[page], j0);
    const int c0 = page * b.T;
    for (int tq = 0; tq < b.T / 4; ++tq) {
      const __m256i e = Elements<C>(l, tq, table);
      const __m256i e0 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(e));  // channels 0..3
      const __m256i e1 = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(e, 1));
      for (int r = 0; r < R; ++r) {
        int64_t quad;
        __builtin_memcpy(&quad, wt.w16[r][g] + c0 + 4 * tq, 8);
        const __m256i w = _mm256_set1_epi64x(quad);
        DotS16<kVnni>(s[r][0], e0, w);
        DotS16<kVnni>(s[r][1], e1, w);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    // hadd: channels 0 1 4 5 | 2 3 6 7; the 64-bit permute puts them in order.
    const __m256i sums =
        _mm256_permute4x64_epi64(_mm256_hadd_epi32(s[r][0], s[r][1]), _MM_SHUFFLE(3, 1, 2, 0));
    AddEight<false>(acc + r * as + j0, sums, wt.scale[r][g] * b.post, 0.0f);
  }
}

// All channels of a chunk for R rows: 16 (q4, q4a) or 8 at a time.
template <VCode C, int R, bool kVnni>
HWY_INLINE void Avx2RowBlock(const ValueChunk& b, const ValueWeights& wt, float* acc, size_t as,
                             Prefetcher* pf, size_t block_bytes) {
  if constexpr (kAvx2WeightBits<C> == 8) {
    TilePrefetch prefetch(pf, block_bytes, b.d / 16);
    for (int j0 = 0; j0 < b.d; j0 += j0 % 32 == 0 ? 8 : 24) {  // 0, 8, 32, 40, ...
      prefetch.before_tile();
      ByteTile<C, R, kVnni>(b, j0, wt, acc, as);
    }
  } else {
    TilePrefetch prefetch(pf, block_bytes, b.d / 8);
    for (int j0 = 0; j0 < b.d; j0 += 8) {
      prefetch.before_tile();
      WordTile<C, R, kVnni>(b, j0, wt, acc, as);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#endif  // KVPACK_ATTENTION_VALUE_TILES_AVX2_INL_H_
