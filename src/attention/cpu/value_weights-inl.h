// Per-target helper of the value kernels: the weights of one head's V blocks in a chunk of
// pages (FACTS.md section 5 item 4: per-page work amortised over the chunk) for a block of query
// rows. For row r and scale group g the products w[r][c] * a[g][c] over the chunk's tokens c (a:
// the token's step, or turbo4's norm) are either kept in f32 (exact weights) or rounded to
// unsigned integers of kBits bits, u = round(W[r][c] * A[g][c]) with W = w * L / max_c w and
// A = a / max_c a (L = 2^kBits - 1), i.e. against c_rg = max w * max a / L, so the chunk adds
// c_rg * sum_c u_c e_cj to channel j (e: the integer code element) and the integer sums run over
// the whole chunk. The scale is separable so that the per-token work is one multiply (no max of
// the products per row and group); it is coarser than max (w a) / L by up to the spread of the
// weights and steps over the chunk, which the measured errors (docs/results.md) include. 16-bit
// weights are stored as a high and a low byte for two 8-bit dot-product passes, 15-bit ones as
// int16 (the AVX2 kernels' 16-bit products, int8_dot-inl.h).
// Included by Highway kernel files after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#undef KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#else
#define KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#endif

#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#include "attention/cpu/value_chunk.h"
#if HWY_TARGET == HWY_AVX3_DL || HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hwn = hwy::HWY_NAMESPACE;

// The weights of one head's blocks in a chunk (all its pages: token c = page * T + t) for up to
// kValueRows rows. Only [rows][groups][tokens] is written.
struct ValueWeights {
  alignas(64) uint8_t hi[kValueRows][kValueGroups][kValueTokens];   // u, or its high byte
  alignas(64) uint8_t lo[kValueRows][kValueGroups][kValueTokens];   // low byte (16-bit weights)
  alignas(64) int16_t w16[kValueRows][kValueGroups][kValueTokens];  // u (15-bit weights)
  alignas(64) float exact[kValueRows][kValueGroups][kValueTokens];  // w a (exact weights)
  alignas(64) float unit[kValueGroups][kValueTokens];  // A = a / max a (a itself when exact)
  alignas(64) float row[kValueTokens];                 // W of the current row
  float amax[kValueGroups];                            // max a per group
  float scale[kValueRows][kValueGroups];               // c (1 for exact weights)
  float mins[kValueRows][kValueGroups];                // sum_c w_c m[g][c] (q4a), else 0
};

// The per-token factors of one head's blocks in a chunk: per page, f16 a[g][t] (groups x T,
// group-major, as the formats' steps and norms are stored) and optionally f16 mins[g][t].
struct ValueUnits {
  const hwy::float16_t* units[kValuePages];
  const hwy::float16_t* mins[kValuePages];  // nullptr: none
  int pages;
  int groups;
  int T;
  int tokens() const { return pages * T; }
};

template <class D>
HWY_INLINE float MaxOf(D d, const float* x, int n) {
  const int N = static_cast<int>(hwn::Lanes(d));
  auto mx = hwn::Zero(d);
  for (int t = 0; t < n; t += N) mx = hwn::Max(mx, hwn::LoadU(d, x + t));
  return hwn::GetLane(hwn::MaxOfLanes(d, mx));
}

// The groups' factors over the chunk: unit = a / max a (a when kBits == 0), and amax. Shared by
// every row of the head.
template <int kBits>
HWY_INLINE void PrepareValueUnits(const ValueUnits& a, ValueWeights& out) {
  using DF = hwn::ScalableTag<float>;
  const DF df;
  const int N = static_cast<int>(hwn::Lanes(df));
  for (int g = 0; g < a.groups; ++g) {
    float* unit = out.unit[g];
    auto mx = hwn::Zero(df);  // the maximum in the same pass as the conversion
    for (int p = 0; p < a.pages; ++p) {
      const hwy::float16_t* ag = a.units[p] + static_cast<size_t>(g) * a.T;
      for (int t = 0; t < a.T; t += N) {
        const auto x = LoadAsFloat(df, ag + t);
        mx = hwn::Max(mx, x);
        hwn::Store(x, df, unit + p * a.T + t);
      }
    }
    if constexpr (kBits != 0) {
      out.amax[g] = hwn::GetLane(hwn::MaxOfLanes(df, mx));
      const auto inv = hwn::Set(df, out.amax[g] > 0.0f ? 1.0f / out.amax[g] : 0.0f);
      for (int c = 0; c < a.tokens(); c += N) {
        hwn::Store(hwn::Mul(hwn::Load(df, unit + c), inv), df, unit + c);
      }
    }
  }
  // Whole vectors of amax are read (the scales of all groups at once).
  for (int g = a.groups; g < kValueGroups; ++g) out.amax[g] = 0.0f;
}

// Row weights for `rows` <= kValueRows rows: w: [rows][ws], the chunk's columns (>= 0).
// kBits: 8, 15 or 16 (integer weights), 0 (exact f32 weights). T % Lanes == 0.
template <int kBits>
HWY_INLINE void PrepareValueRows(const ValueUnits& a, const float* w, size_t ws, int rows,
                                 ValueWeights& out) {
  using DF = hwn::ScalableTag<float>;
  const DF df;
  const hwn::RebindToSigned<DF> di;
  const hwn::Rebind<uint8_t, DF> du8;
  const int N = static_cast<int>(hwn::Lanes(df));
  const int n = a.tokens();
  constexpr float kTop = static_cast<float>((1 << kBits) - 1);
  for (int r = 0; r < rows; ++r) {
    const float* wr = w + r * ws;
    for (int g = 0; g < a.groups; ++g) {
      out.mins[r][g] = 0.0f;
      if (a.mins[0] == nullptr) continue;
      // Integer weights read q4a's codes centred (u - 8, so rounding errors cancel as for the
      // symmetric formats): x = (u - 8) step + (min + 8 step), the second part summed here with
      // the exact weights.
      auto sum = hwn::Zero(df);
      for (int p = 0; p < a.pages; ++p) {
        const hwy::float16_t* mg = a.mins[p] + static_cast<size_t>(g) * a.T;
        const hwy::float16_t* sg = a.units[p] + static_cast<size_t>(g) * a.T;
        for (int t = 0; t < a.T; t += N) {
          auto m = LoadAsFloat(df, mg + t);
          if constexpr (kBits != 0) m = hwn::MulAdd(hwn::Set(df, 8.0f), LoadAsFloat(df, sg + t), m);
          sum = hwn::MulAdd(hwn::LoadU(df, wr + p * a.T + t), m, sum);
        }
      }
      out.mins[r][g] = hwn::GetLane(hwn::SumOfLanes(df, sum));
    }
    if constexpr (kBits == 0) {
      for (int g = 0; g < a.groups; ++g) {
        out.scale[r][g] = 1.0f;
        for (int c = 0; c < n; c += N) {
          hwn::Store(hwn::Mul(hwn::LoadU(df, wr + c), hwn::Load(df, out.unit[g] + c)), df,
                     out.exact[r][g] + c);
        }
      }
      continue;
    }
    const float wmax = MaxOf(df, wr, n);
    const auto inv = hwn::Set(df, wmax > 0.0f ? kTop / wmax : 0.0f);
#if HWY_TARGET == HWY_AVX3_DL
    static_assert(kBits != 15, "AVX3_DL uses 8- and 16-bit weights");
    // One pass over the tokens with W in a register (no stored row), the scales of all groups
    // as one vector division; Highway 1.0.3's NearestInt and DemoteTo to u8 take 3-5
    // instructions each here, these one each (same results: RNE rounding, values in range; the
    // truncating narrowing keeps the low byte). Results are identical to the portable path's.
    _mm256_storeu_ps(out.scale[r],
                     _mm256_div_ps(_mm256_mul_ps(_mm256_set1_ps(wmax), _mm256_loadu_ps(out.amax)),
                                   _mm256_set1_ps(kTop)));
    for (int c = 0; c < n; c += 16) {
      const __m512 wv = _mm512_mul_ps(_mm512_loadu_ps(wr + c), inv.raw);
      for (int g = 0; g < a.groups; ++g) {
        const __m512i u = _mm512_cvtps_epi32(_mm512_mul_ps(wv, _mm512_load_ps(out.unit[g] + c)));
        if constexpr (kBits == 16) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.hi[r][g] + c),
                           _mm512_cvtepi32_epi8(_mm512_srli_epi32(u, 8)));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.lo[r][g] + c), _mm512_cvtepi32_epi8(u));
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.hi[r][g] + c), _mm512_cvtepi32_epi8(u));
        }
      }
    }
    continue;
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
    static_assert(kBits != 16, "the AVX2 tiles use 8- and 15-bit weights");
    // The same single pass, 16 tokens at a time in 256-bit halves: VCVTPS2DQ rounds to nearest
    // even as NearestInt does, and the packs narrow values already in range (u <= 255 or
    // 32767) where Highway 1.0.3's DemoteTo takes several instructions.
    const __m256 inv8 = _mm256_set1_ps(wmax > 0.0f ? kTop / wmax : 0.0f);
    for (int g = 0; g < a.groups; ++g) out.scale[r][g] = wmax * out.amax[g] / kTop;
    for (int c = 0; c < n; c += 16) {
      const __m256 w0 = _mm256_mul_ps(_mm256_loadu_ps(wr + c), inv8);
      const __m256 w1 = _mm256_mul_ps(_mm256_loadu_ps(wr + c + 8), inv8);
      for (int g = 0; g < a.groups; ++g) {
        const float* unit = out.unit[g] + c;
        const __m256i u0 = _mm256_cvtps_epi32(_mm256_mul_ps(w0, _mm256_load_ps(unit)));
        const __m256i u1 = _mm256_cvtps_epi32(_mm256_mul_ps(w1, _mm256_load_ps(unit + 8)));
        // packs interleaves the 128-bit halves: [u0 0-3, u1 0-3 | u0 4-7, u1 4-7].
        const __m256i p16 =
            _mm256_permute4x64_epi64(_mm256_packs_epi32(u0, u1), _MM_SHUFFLE(3, 1, 2, 0));
        if constexpr (kBits == 15) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(out.w16[r][g] + c), p16);
        } else {
          _mm_storeu_si128(
              reinterpret_cast<__m128i*>(out.hi[r][g] + c),
              _mm_packus_epi16(_mm256_castsi256_si128(p16), _mm256_extracti128_si256(p16, 1)));
        }
      }
    }
    continue;
#endif
    for (int c = 0; c < n; c += N)
      hwn::Store(hwn::Mul(hwn::LoadU(df, wr + c), inv), df, out.row + c);
    for (int g = 0; g < a.groups; ++g) {
      out.scale[r][g] = wmax * out.amax[g] / kTop;
      for (int c = 0; c < n; c += N) {
        const auto u =
            hwn::NearestInt(hwn::Mul(hwn::Load(df, out.row + c), hwn::Load(df, out.unit[g] + c)));
        if constexpr (kBits == 16) {
          hwn::StoreU(hwn::DemoteTo(du8, hwn::ShiftRight<8>(u)), du8, out.hi[r][g] + c);
          hwn::StoreU(hwn::DemoteTo(du8, hwn::And(u, hwn::Set(di, 0xff))), du8, out.lo[r][g] + c);
        } else if constexpr (kBits == 15) {
          const hwn::Rebind<int16_t, DF> d16;
          hwn::StoreU(hwn::DemoteTo(d16, u), d16, out.w16[r][g] + c);
        } else {
          hwn::StoreU(hwn::DemoteTo(du8, u), du8, out.hi[r][g] + c);
        }
      }
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
