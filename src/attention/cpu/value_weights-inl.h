// Per-target helper of the value kernels: the weights of one V block for a block of query rows.
// For row r and scale group g the page's products p_t = w[r][t] * a[g][t] (a: the token's step,
// or turbo4's norm) are either kept in f32 (exact weights) or rounded to unsigned integers
// u_t = round(p_t / c) of kBits bits against c = max_t p_t / (2^kBits - 1), so the page adds
// c * sum_t u_t e_tj to channel j (e: the integer code element). 16-bit weights are stored as a
// high and a low byte for two 8-bit dot-product passes.
// Included by Highway kernel files after <hwy/highway.h> (re-included once per target).
#if defined(KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_) == defined(HWY_TARGET_TOGGLE)
#ifdef KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#undef KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#else
#define KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
#endif

#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hwn = hwy::HWY_NAMESPACE;

// Query rows per block of the value kernels (register tiles hold 4 rows).
constexpr int kValueRows = 4;
constexpr int kValueGroups = 8;    // scale groups per head: d <= 256 at 32 channels per group
constexpr int kValueTokens = 256;  // page tokens

// One V block's weights for up to kValueRows rows. Only [rows][groups][T] is written.
struct ValueWeights {
  alignas(64) uint8_t hi[kValueRows][kValueGroups][kValueTokens];   // u, or its high byte
  alignas(64) uint8_t lo[kValueRows][kValueGroups][kValueTokens];   // low byte (16-bit weights)
  alignas(64) float exact[kValueRows][kValueGroups][kValueTokens];  // p_t (exact weights)
  float scale[kValueRows][kValueGroups];                            // c (1 for exact weights)
  float mins[kValueRows][kValueGroups];  // sum_t w_t m[g][t] (q4a), else 0
};

// The per-token factors of one block: f16 a[g][t] at `units` (groups x T, group-major, as the
// formats' steps and norms are stored) and optionally f16 mins[g][t].
struct ValueUnits {
  const hwy::float16_t* units;
  const hwy::float16_t* mins;  // nullptr: none
  int groups;
  int T;
};

// w: [rows][ws] the block's weights (page-relative columns), rows <= kValueRows.
// kBits: 8 or 16 (integer weights), 0 (exact f32 weights).
template <int kBits>
HWY_INLINE void PrepareValueWeights(const ValueUnits& a, const float* w, size_t ws, int rows,
                                    ValueWeights& out) {
  using DF = hwn::ScalableTag<float>;
  const DF df;
  const hwn::RebindToSigned<DF> di;
  const hwn::Rebind<uint8_t, DF> du8;
  const int N = static_cast<int>(hwn::Lanes(df));
  constexpr float kTop = kBits == 16 ? 65535.0f : 255.0f;
  for (int g = 0; g < a.groups; ++g) {
    const hwy::float16_t* ag = a.units + static_cast<size_t>(g) * a.T;
    for (int r = 0; r < rows; ++r) {
      const float* wr = w + r * ws;
      float* p = out.exact[r][g];
      auto mx = hwn::Zero(df);
      for (int t = 0; t < a.T; t += N) {
        const auto v = hwn::Mul(hwn::LoadU(df, wr + t), LoadAsFloat(df, ag + t));
        hwn::Store(v, df, p + t);
        mx = hwn::Max(mx, v);
      }
      out.mins[r][g] = 0.0f;
      if (a.mins != nullptr) {
        const hwy::float16_t* mg = a.mins + static_cast<size_t>(g) * a.T;
        auto sum = hwn::Zero(df);
        for (int t = 0; t < a.T; t += N) {
          sum = hwn::MulAdd(hwn::LoadU(df, wr + t), LoadAsFloat(df, mg + t), sum);
        }
        out.mins[r][g] = hwn::GetLane(hwn::SumOfLanes(df, sum));
      }
      if constexpr (kBits == 0) {
        out.scale[r][g] = 1.0f;
        continue;
      }
      const float m = hwn::GetLane(hwn::MaxOfLanes(df, mx));
      out.scale[r][g] = m / kTop;
      const auto inv = hwn::Set(df, m > 0.0f ? kTop / m : 0.0f);
      for (int t = 0; t < a.T; t += N) {
        const auto u = hwn::NearestInt(hwn::Mul(hwn::Load(df, p + t), inv));
        if constexpr (kBits == 16) {
          const auto high = hwn::ShiftRight<8>(u);
          const auto low = hwn::And(u, hwn::Set(di, 0xff));
          hwn::StoreU(hwn::DemoteTo(du8, high), du8, out.hi[r][g] + t);
          hwn::StoreU(hwn::DemoteTo(du8, low), du8, out.lo[r][g] + t);
        } else {
          hwn::StoreU(hwn::DemoteTo(du8, u), du8, out.hi[r][g] + t);
        }
      }
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// The same with AVX-512 intrinsics (Highway 1.0.3's NearestInt and DemoteTo to u8 take 3-5
// instructions each here); identical results: f32 products, RNE rounding, truncating narrowing
// of values already in range. T % 16 == 0.
template <int kBits>
HWY_INLINE void PrepareValueWeightsAvx512(const ValueUnits& a, const float* w, size_t ws, int rows,
                                          ValueWeights& out) {
  constexpr float kTop = kBits == 16 ? 65535.0f : 255.0f;
  for (int g = 0; g < a.groups; ++g) {
    const auto* ag = reinterpret_cast<const __m256i*>(a.units + static_cast<size_t>(g) * a.T);
    for (int r = 0; r < rows; ++r) {
      const float* wr = w + r * ws;
      float* p = out.exact[r][g];
      __m512 mx = _mm512_setzero_ps();
      for (int t = 0; t < a.T; t += 16) {
        const __m512 v = _mm512_mul_ps(_mm512_loadu_ps(wr + t),
                                       _mm512_cvtph_ps(_mm256_loadu_si256(ag + t / 16)));
        _mm512_store_ps(p + t, v);
        mx = _mm512_max_ps(mx, v);
      }
      out.mins[r][g] = 0.0f;
      if (a.mins != nullptr) {
        const auto* mg = reinterpret_cast<const __m256i*>(a.mins + static_cast<size_t>(g) * a.T);
        __m512 sum = _mm512_setzero_ps();
        for (int t = 0; t < a.T; t += 16) {
          sum = _mm512_fmadd_ps(_mm512_loadu_ps(wr + t),
                                _mm512_cvtph_ps(_mm256_loadu_si256(mg + t / 16)), sum);
        }
        out.mins[r][g] = _mm512_reduce_add_ps(sum);
      }
      const float m = _mm512_reduce_max_ps(mx);
      out.scale[r][g] = m / kTop;
      const __m512 inv = _mm512_set1_ps(m > 0.0f ? kTop / m : 0.0f);
      for (int t = 0; t < a.T; t += 16) {
        const __m512i u = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(p + t), inv));
        if constexpr (kBits == 16) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.hi[r][g] + t),
                           _mm512_cvtepi32_epi8(_mm512_srli_epi32(u, 8)));
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.lo[r][g] + t),
                           _mm512_cvtepi32_epi8(_mm512_and_si512(u, _mm512_set1_epi32(0xff))));
        } else {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(out.hi[r][g] + t), _mm512_cvtepi32_epi8(u));
        }
      }
    }
  }
}
#endif

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#endif  // KVPACK_ATTENTION_VALUE_WEIGHTS_INL_H_
