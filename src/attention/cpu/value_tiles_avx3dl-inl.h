// Per-target helper of the value kernels (cpu/value_kernels.cpp): the AVX-512 VNNI tiles. Codes
// sit in token quads (a 64-byte line is 16 channel slots x 4 tokens), so one VPDPBUSD multiplies a
// line by a broadcast of 4 tokens' integer weights and adds each slot's 4 products into its lane:
// no horizontal sums. q8 uses 16-bit weights in two byte passes, the 4-bit and plane formats
// 8-bit weights and their 16-entry int8 tables (VPERMB, PSHUFB).
// Included by cpu/value_kernels.cpp after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_VALUE_TILES_AVX3DL_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_VALUE_TILES_AVX3DL_INL_H_
#undef KVPACK_ATTENTION_VALUE_TILES_AVX3DL_INL_H_
#else
#define KVPACK_ATTENTION_VALUE_TILES_AVX3DL_INL_H_
#endif

#include <hwy/highway.h>

#include "attention/cpu/value_weights-inl.h"  // on every pass (see value_tiles_avx2-inl.h)

#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>

#include "attention/cpu/value_chunk.h"
#include "attention/cpu/vnni_target-inl.h"  // KVPACK_VNNI for this target

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {

// acc[j .. j + 16) += scale * sum (+ mins) for one row.
template <bool kMins>
HWY_INLINE void AddLine(float* acc, __m512i sum, float scale, float mins) {
  __m512 base = _mm512_loadu_ps(acc);
  if constexpr (kMins) base = _mm512_add_ps(base, _mm512_set1_ps(mins));
  _mm512_storeu_ps(acc, _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_set1_ps(scale), base));
}
// q8, one group (32 channels) for R rows; kPasses 2 = 16-bit weights (high, then low byte).
template <int R, int kPasses>
KVPACK_VNNI HWY_INLINE void Q8Group(const ValueChunk& b, int j0, const ValueWeights& wt, float* acc,
                                    size_t as) {
  const int g = j0 / 32;
  __m512i s[kPasses][R][2];
  for (int p = 0; p < kPasses; ++p) {
    for (int r = 0; r < R; ++r) s[p][r][0] = s[p][r][1] = _mm512_setzero_si512();
  }
  for (int page = 0; page < b.pages; ++page) {
    const uint8_t* codes = b.codes[page] + static_cast<size_t>(j0) * 4;
    const int c0 = page * b.T;  // the page's first token in the chunk
    for (int tq = 0; tq < b.T / 4; ++tq) {
      const uint8_t* line = codes + static_cast<size_t>(tq) * b.d * 4;
      const __m512i v0 = _mm512_loadu_si512(line);
      const __m512i v1 = _mm512_loadu_si512(line + 64);
      for (int r = 0; r < R; ++r) {
        for (int p = 0; p < kPasses; ++p) {
          int32_t quad;
          __builtin_memcpy(&quad, (p == 0 ? wt.hi : wt.lo)[r][g] + c0 + 4 * tq, 4);
          const __m512i w = _mm512_set1_epi32(quad);
          dpbusd(s[p][r][0], w, v0);
          dpbusd(s[p][r][1], w, v1);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < 2; ++v) {
      __m512i tot = s[0][r][v];
      if constexpr (kPasses == 2) tot = _mm512_add_epi32(_mm512_slli_epi32(tot, 8), s[1][r][v]);
      AddLine<false>(acc + r * as + j0 + 16 * v, tot, wt.scale[r][g] * b.post, 0.0f);
    }
  }
}

// 4-bit codes, L lines of 32 channels from j0, R rows, 8-bit weights.
template <VCode C, int R, int L>
KVPACK_VNNI HWY_INLINE void NibbleTile(const ValueChunk& b, int j0, const ValueWeights& wt,
                                       float* acc, size_t as) {
  // The 16-entry table in each 16-byte lane: VPERMB (AVX3_DL has VBMI) reads index bits 0..5,
  // and bits 4..5 pick among equal copies, so the nibbles need no masking (PSHUFB would).
  const __m512i tab =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.table)));
  __m512i s[R][2 * L];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < 2 * L; ++v) s[r][v] = _mm512_setzero_si512();
  }
  for (int page = 0; page < b.pages; ++page) {
    const uint8_t* codes = b.codes[page] + static_cast<size_t>(j0 / 32) * 64;
    const int c0 = page * b.T;  // the page's first token in the chunk
    for (int tq = 0; tq < b.T / 4; ++tq) {
      __m512i e[2 * L];
      for (int l = 0; l < L; ++l) {
        const __m512i v =
            _mm512_loadu_si512(codes + (static_cast<size_t>(tq) * b.d / 2 + 16 * l) * 4);
        e[2 * l] = _mm512_permutexvar_epi8(v, tab);
        e[2 * l + 1] = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), tab);
      }
      for (int r = 0; r < R; ++r) {
        for (int l = 0; l < L; ++l) {
          int32_t quad;
          __builtin_memcpy(&quad, wt.hi[r][GroupOf<C>(j0 + 32 * l)] + c0 + 4 * tq, 4);
          const __m512i w = _mm512_set1_epi32(quad);
          dpbusd(s[r][2 * l], w, e[2 * l]);
          dpbusd(s[r][2 * l + 1], w, e[2 * l + 1]);
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < 2 * L; ++v) {
      const int g = GroupOf<C>(j0 + 16 * v);
      AddLine<C == VCode::q4a>(acc + r * as + j0 + 16 * v, s[r][v], wt.scale[r][g] * b.post,
                               wt.mins[r][g]);
    }
  }
}
// 2-bit codes (and turbo3's 1-bit plane of bit 2), one line of 64 channels from j0, R rows,
// 8-bit weights (one group). The 1-bit plane's 128-channel block holds channel 16k + l of the
// line in lane l, bit k (+ 4 for the block's second line); kHalf: the line is a 64-channel
// block of its own (the last one where d % 128 == 64), 8 lanes with channel 16k + l in lane
// l % 8, bit 2k + l / 8.
template <VCode C, int R, bool kHalf = false>
KVPACK_VNNI HWY_INLINE void PlaneTile(const ValueChunk& b, int j0, const ValueWeights& wt,
                                      float* acc, size_t as) {
  const __m512i low2 = _mm512_set1_epi8(0x03), bit2 = _mm512_set1_epi8(0x04);
  const __m512i tab =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.table)));
  __m512i s[R][4];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < 4; ++v) s[r][v] = _mm512_setzero_si512();
  }
  for (int page = 0; page < b.pages; ++page) {
    const uint8_t* codes = b.codes[page] + static_cast<size_t>(j0 / 64) * 64;
    const uint8_t* high =
        b.codes[page] + static_cast<size_t>(b.T) * b.d / 4 + static_cast<size_t>(j0 / 128) * 64;
    const int c0 = page * b.T;
    for (int tq = 0; tq < b.T / 4; ++tq) {
      const __m512i v = _mm512_loadu_si512(codes + static_cast<size_t>(tq) * b.d);
      __m512i h = _mm512_setzero_si512();
      if constexpr (C == VCode::turbo3) {
        if constexpr (kHalf) {
          // 32 bytes; lanes 8..15 take them shifted by one: channel 16k + l at lane l, bit 2k.
          const __m256i h8 = _mm256_loadu_si256(
              reinterpret_cast<const __m256i*>(high + static_cast<size_t>(tq) * b.d / 2));
          h = _mm512_inserti64x4(_mm512_castsi256_si512(h8), _mm256_srli_epi16(h8, 1), 1);
        } else {
          h = _mm512_loadu_si512(high + static_cast<size_t>(tq) * b.d / 2);
          if ((j0 / 64) % 2) h = _mm512_srli_epi16(h, 4);  // this line's channels: bits 4..7
        }
      }
      __m512i w[R];
      for (int r = 0; r < R; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, wt.hi[r][0] + c0 + 4 * tq, 4);
        w[r] = _mm512_set1_epi32(quad);
      }
      for (int k = 0; k < 4; ++k) {
        __m512i x = _mm512_and_si512(_mm512_srli_epi16(v, 2 * k), low2);
        if constexpr (C == VCode::turbo3) {
          const int at = kHalf ? 2 * k : k;  // the bit of channel 16k + l in lane l
          const __m512i hk = at < 2 ? _mm512_slli_epi16(h, 2 - at) : _mm512_srli_epi16(h, at - 2);
          x = _mm512_or_si512(x, _mm512_and_si512(hk, bit2));
        }
        const __m512i e = _mm512_shuffle_epi8(tab, x);
        for (int r = 0; r < R; ++r) dpbusd(s[r][k], w[r], e);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < 4; ++v) {
      AddLine<false>(acc + r * as + j0 + 16 * v, s[r][v], wt.scale[r][0] * b.post, 0.0f);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // HWY_TARGET == HWY_AVX3_DL
#endif  // KVPACK_ATTENTION_VALUE_TILES_AVX3DL_INL_H_
