// K kernel of the per-channel KIVI keys (kivi4, kivi2; docs/formats.md). A page's keys are
// x[t][j] = u[t][j] step[j] + min[j], so <q, x_t> = sum_j (q_j step_j) u_tj + sum_j q_j min_j:
// per page and row the query is folded with the page's steps and rounded to int8 per group of
// channels (one scale each), the bias is an f32 dot, and each token costs integer dot products
// with its codes, which sit in a key bit plane (16 tokens x 4 channels per 64-byte line for each
// value position): VPDPBUSD on AVX-512 VNNI (codes as the unsigned operand, no bias to correct),
// exact f32 sums of integers elsewhere.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/kivi_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <cmath>

#include "attention/cpu/float_load-inl.h"
#include "attention/cpu/int8_dot-inl.h"
#include "attention/kernels.h"

#include "attention/cpu/vnni_target-inl.h"  // KVPACK_VNNI for this target

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int kGroup = 32;    // query channels per int8 scale
constexpr int kMaxDim = 256;  // kivi head dims served here
constexpr int kRows = 4;      // rows per register tile

// One row's query for one page: int8 codes of q * step per group, their scales and the bias.
struct PageQuery {
  alignas(64) int8_t z[kMaxDim];
  alignas(64) float fz[kMaxDim];  // the same integers as f32 (portable path)
  float scale[kMaxDim / kGroup];
  float bias;
};

// q: [d] f32 (scaled), step, min: f16 [d] of the page. Per group, with a = max |q step|:
// scale = a / 127, z = round(q step * (127 / a)) (ties to even).
HWY_INLINE void FoldQuery(const float* q, const hwy::float16_t* step, const hwy::float16_t* min,
                          int d, PageQuery& out) {
  const DF df;
  const hn::Rebind<int8_t, DF> d8;
  const int N = static_cast<int>(hn::Lanes(df));
  HWY_ALIGN float qs[kMaxDim];
  auto bias = hn::Zero(df);
  for (int j = 0; j < d; j += N) {
    const VF qv = hn::LoadU(df, q + j);
    hn::Store(hn::Mul(qv, LoadAsFloat(df, step + j)), df, qs + j);
    bias = hn::MulAdd(qv, LoadAsFloat(df, min + j), bias);
  }
  out.bias = hn::GetLane(hn::SumOfLanes(df, bias));
  for (int g = 0; g < d / kGroup; ++g) {
    auto mx = hn::Zero(df);
    for (int j = g * kGroup; j < (g + 1) * kGroup; j += N) {
      mx = hn::Max(mx, hn::Abs(hn::Load(df, qs + j)));
    }
    const float a = hn::GetLane(hn::MaxOfLanes(df, mx));
    out.scale[g] = a / 127.0f;
    const VF inv = hn::Set(df, a > 0 ? 127.0f / a : 0.0f);
#if HWY_TARGET == HWY_AVX3_DL
    // One instruction each for the rounding and the narrowing (Highway 1.0.3's take several);
    // the integer paths need no f32 copy of the codes.
    for (int j = g * kGroup; j < (g + 1) * kGroup; j += 16) {
      const __m512i z = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(qs + j), inv.raw));
      _mm_store_si128(reinterpret_cast<__m128i*>(out.z + j), _mm512_cvtsepi32_epi8(z));
    }
    continue;
#endif
    for (int j = g * kGroup; j < (g + 1) * kGroup; j += N) {
      const auto z = hn::NearestInt(hn::Mul(hn::Load(df, qs + j), inv));
      hn::StoreU(hn::DemoteTo(d8, z), d8, out.z + j);
      hn::Store(hn::ConvertTo(df, z), df, out.fz + j);
    }
  }
}

#if HWY_TARGET == HWY_AVX3_DL
// Per group of 32 channels, sum_j z_j u_tj for the 16 tokens at tb: kBits 4 (lines of 8
// channels) or 2 (lines of 16).
template <int kBits, int R>
KVPACK_VNNI HWY_INLINE void GroupDots(const uint8_t* codes, int T, int tb, int g,
                                      const PageQuery* const* q, __m512i (&dot)[R]) {
  const __m512i mask = _mm512_set1_epi8(kBits == 4 ? 0x0f : 0x03);
  for (int r = 0; r < R; ++r) dot[r] = _mm512_setzero_si512();
  constexpr int kPerLine = 32 / kBits;  // channels per line
  for (int o = g * kGroup / kPerLine; o < (g + 1) * kGroup / kPerLine; ++o) {
    const __m512i v = _mm512_loadu_si512(codes + (static_cast<size_t>(o) * T + tb) * 4);
    for (int k = 0; k < 8 / kBits; ++k) {
      const __m512i u = _mm512_and_si512(k == 0 ? v : _mm512_srli_epi16(v, kBits * k), mask);
      for (int r = 0; r < R; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, q[r]->z + kPerLine * o + 4 * k, 4);
        dpbusd(dot[r], u, _mm512_set1_epi32(quad));
      }
    }
  }
}
#endif

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
// The same for the 8 tokens at tb, 256-bit: codes below 16 are DotU8's unsigned operand.
template <int kBits, int R, bool kVnni>
HWY_INLINE void GroupDots8(const uint8_t* codes, int T, int tb, int g, const PageQuery* const* q,
                           __m256i (&dot)[R]) {
  const __m256i mask = _mm256_set1_epi8(kBits == 4 ? 0x0f : 0x03);
  for (int r = 0; r < R; ++r) dot[r] = _mm256_setzero_si256();
  constexpr int kPerLine = 32 / kBits;  // channels per line
  for (int o = g * kGroup / kPerLine; o < (g + 1) * kGroup / kPerLine; ++o) {
    const __m256i v = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(codes + (static_cast<size_t>(o) * T + tb) * 4));
    for (int k = 0; k < 8 / kBits; ++k) {
      const __m256i u = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(kBits * k)), mask);
      for (int r = 0; r < R; ++r)
        DotU8<kVnni>(dot[r], u, Broadcast4(q[r]->z + kPerLine * o + 4 * k));
    }
  }
}

template <int kBits, int R, bool kVnni>
HWY_INLINE void GroupDotsF(const uint8_t* codes, int T, int tb, int g, const PageQuery* const* q,
                           VF (&out)[R]) {
  __m256i lo[R];
  GroupDots8<kBits, R, kVnni>(codes, T, tb, g, q, lo);
#if HWY_TARGET == HWY_AVX2
  for (int r = 0; r < R; ++r) out[r] = VF{_mm256_cvtepi32_ps(lo[r])};
#else
  __m256i hi[R];
  GroupDots8<kBits, R, kVnni>(codes, T, tb + 8, g, q, hi);
  for (int r = 0; r < R; ++r) {
    out[r] = VF{_mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo[r]), hi[r], 1))};
  }
#endif
}
#endif

// logits[r][tb .. tb + N) for R rows of one block.
template <int kBits, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void ScoreTokens(const uint8_t* codes, int T, int d, int tb,
                                        const PageQuery* const* q, float* logits, size_t stride) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  VF acc[R];
  for (int r = 0; r < R; ++r) acc[r] = hn::Set(df, q[r]->bias);
  for (int g = 0; g < d / kGroup; ++g) {
#if HWY_TARGET == HWY_AVX3_DL
    __m512i dot[R];
    GroupDots<kBits, R>(codes, T, tb, g, q, dot);
    for (int r = 0; r < R; ++r) {
      acc[r] = hn::MulAdd(VF{_mm512_cvtepi32_ps(dot[r])}, hn::Set(df, q[r]->scale[g]), acc[r]);
    }
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
    VF dot[R];
    GroupDotsF<kBits, R, kVnni>(codes, T, tb, g, q, dot);
    for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(dot[r], hn::Set(df, q[r]->scale[g]), acc[r]);
#else
    // Per token (lane): the codes read from the plane one at a time, f32 sums of integers.
    HWY_ALIGN float sums[R][HWY_MAX_BYTES / 4];
    for (int i = 0; i < N; ++i) {
      for (int r = 0; r < R; ++r) sums[r][i] = 0.0f;
      for (int j = g * kGroup; j < (g + 1) * kGroup; ++j) {
        constexpr int kPerLine = 32 / kBits;
        const int c = j % kPerLine;
        const uint8_t byte = codes[(static_cast<size_t>(j / kPerLine) * T + tb + i) * 4 + c % 4];
        const float u = static_cast<float>((byte >> (c / 4 * kBits)) & ((1 << kBits) - 1));
        for (int r = 0; r < R; ++r) sums[r][i] += q[r]->fz[j] * u;
      }
    }
    for (int r = 0; r < R; ++r) {
      acc[r] = hn::MulAdd(hn::Load(df, sums[r]), hn::Set(df, q[r]->scale[g]), acc[r]);
    }
#endif
  }
  for (int r = 0; r < R; ++r) hn::StoreU(acc[r], df, logits + r * stride + tb);
}

// steps_at, mins_at: where the page's f16 steps [d] and mins [d] sit (BlockLayout).
template <int kBits, bool kVnni>
KVPACK_VNNI void ScoreKivi(const BlockSet& b, int T, int d, size_t steps_at, size_t mins_at,
                           const float* q, int rows, float* logits, size_t stride, Prefetcher& pf) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  PageQuery pq[kRows];
  const PageQuery* qp[kRows] = {&pq[0], &pq[1], &pq[2], &pq[3]};
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const uint8_t* block = b.at(i, h);
      pf.advance(b.head_bytes);
      const auto* step = reinterpret_cast<const hwy::float16_t*>(block + steps_at);
      const auto* min = reinterpret_cast<const hwy::float16_t*>(block + mins_at);
      float* out = logits + h * rows * stride + i * T;
      for (int r0 = 0; r0 < rows; r0 += kRows) {
        const int R = std::min(kRows, rows - r0);
        for (int r = 0; r < R; ++r) {
          FoldQuery(q + (static_cast<size_t>(h) * rows + r0 + r) * d, step, min, d, pq[r]);
        }
        float* o = out + r0 * stride;
        for (int tb = 0; tb < T; tb += N) {
          if (R == 4) ScoreTokens<kBits, 4, kVnni>(block, T, d, tb, qp, o, stride);
          if (R == 3) ScoreTokens<kBits, 3, kVnni>(block, T, d, tb, qp, o, stride);
          if (R == 2) ScoreTokens<kBits, 2, kVnni>(block, T, d, tb, qp, o, stride);
          if (R == 1) ScoreTokens<kBits, 1, kVnni>(block, T, d, tb, qp, o, stride);
        }
      }
    }
  }
}

// avx_vnni: the AVX2 kernels may use AVX-VNNI (avx_vnni_allowed()); other targets ignore it.
template <int kBits>
KVPACK_VNNI void ScoreKiviOn(const BlockSet& b, int T, int d, size_t steps_at, size_t mins_at,
                             const float* q, int rows, float* logits, size_t stride, Prefetcher& pf,
                             bool avx_vnni) {
#if HWY_TARGET == HWY_AVX2
  if (avx_vnni) {
    return ScoreKivi<kBits, true>(b, T, d, steps_at, mins_at, q, rows, logits, stride, pf);
  }
#endif
  (void)avx_vnni;
  ScoreKivi<kBits, false>(b, T, d, steps_at, mins_at, q, rows, logits, stride, pf);
}

KVPACK_VNNI void ScoreKivi4(const BlockSet& b, int T, int d, size_t steps_at, size_t mins_at,
                            const float* q, int rows, float* logits, size_t stride, Prefetcher& pf,
                            bool avx_vnni) {
  ScoreKiviOn<4>(b, T, d, steps_at, mins_at, q, rows, logits, stride, pf, avx_vnni);
}
KVPACK_VNNI void ScoreKivi2(const BlockSet& b, int T, int d, size_t steps_at, size_t mins_at,
                            const float* q, int rows, float* logits, size_t stride, Prefetcher& pf,
                            bool avx_vnni) {
  ScoreKiviOn<2>(b, T, d, steps_at, mins_at, q, rows, logits, stride, pf, avx_vnni);
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cstring>

#include "base/simd_target.h"

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreKivi4);
HWY_EXPORT(ScoreKivi2);

namespace {

// The prepared query is the scaled f32 query: the int8 rounding happens per page, after the fold
// with that page's steps.
size_t kivi_query_bytes(const format::Codec& codec) {
  return static_cast<size_t>(codec.head_dim()) * sizeof(float);
}

void kivi_prepare(const format::Codec& codec, int /*head*/, const float* q, int rows,
                  size_t q_stride, uint8_t* qbuf) {
  const size_t row = kivi_query_bytes(codec);
  for (int r = 0; r < rows; ++r) std::memcpy(qbuf + r * row, q + r * q_stride, row);
}

#define KVPACK_KIVI_ENTRY(NAME)                                                                   \
  void score_##NAME(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows, \
                    float* logits, size_t stride, Prefetcher& pf) {                               \
    const format::BlockLayout& l = codec.layout();                                                \
    HWY_DYNAMIC_DISPATCH(Score##NAME)                                                             \
    (b, codec.page_tokens(), codec.head_dim(), l.steps, l.mins,                                   \
     reinterpret_cast<const float*>(qbuf), rows, logits, stride, pf, avx_vnni_allowed());         \
  }
KVPACK_KIVI_ENTRY(Kivi4)
KVPACK_KIVI_ENTRY(Kivi2)
#undef KVPACK_KIVI_ENTRY

// query_bits 8 per group of 32: of q times the page's steps (tests/attention: kivi's term).
const KKernel kKivi4{"int8-dot", 8, 32, kivi_query_bytes, kivi_prepare, score_Kivi4};
const KKernel kKivi2{"int8-dot", 8, 32, kivi_query_bytes, kivi_prepare, score_Kivi2};

}  // namespace

// Per-channel integer codes (a step and min per channel over the page) in key planes of 4 or
// 2 bits.
const KKernel* kivi_k_kernel(const format::Codec& codec) {
  const format::BlockLayout& l = codec.layout();
  const int d = codec.head_dim();
  if (l.element != format::BlockLayout::Element::integer || !l.per_channel ||
      l.order != format::BlockLayout::Order::key_planes || codec.page_tokens() % 16 != 0 ||
      d % 32 != 0 || d > 256) {
    return nullptr;
  }
  if (l.code_bits() == 4) return &kKivi4;
  if (l.code_bits() == 2) return &kKivi2;
  return nullptr;
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
