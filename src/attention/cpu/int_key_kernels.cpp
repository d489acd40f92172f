// K kernels for integer codes in the channel-interleaved K layout (docs/formats.md): q8 ([d/4]
// [T][4] int8), q4 and q4a ([d/8][T][4] nibble pairs). Per group of channels and block of N
// tokens, the query's int8 codes times the key codes are summed exactly (AVX-512 VNNI: one
// VPDPBUSD per 64-byte line and query row, each lane one token; other targets: the same integer
// sums in f32, exact below 2^24), then scaled by key step x query scale into f32 logits.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/int_key_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#include "attention/cpu/int8_dot-inl.h"
#include "attention/int_query.h"
#include "attention/kernels.h"

#include "attention/cpu/vnni_target-inl.h"  // KVPACK_VNNI for this target

#ifndef KVPACK_ATTENTION_INT_KEY_BLOCK_
#define KVPACK_ATTENTION_INT_KEY_BLOCK_
namespace kvpack::attention::detail {
// The geometry of one integer-code K block, from the codec's BlockLayout.
struct IntKeyBlock {
  int T;         // page tokens
  int d;         // head dim
  int group;     // channels per step
  size_t steps;  // offset of f16 steps [d / group][T]
  size_t mins;   // offset of f16 mins [d / group][T] (q4a)
};
}  // namespace kvpack::attention::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

// The key code formats, as they differ per 64-byte line of 16 tokens.
enum class Code { q8, q4, q4a };

template <Code C>
struct Traits {
  static constexpr int kLineChannels = C == Code::q8 ? 4 : 8;  // channels per [T][4]-byte slab
  // Offset of the unsigned code the dot product sees: VNNI reads q8 as k + 128 (xor 0x80); q4's
  // nibbles are k + 8 everywhere.
  static constexpr int kVnniBias = C == Code::q8 ? 128 : C == Code::q4 ? 8 : 0;
  static constexpr int kBias = C == Code::q4 ? 8 : 0;
  static constexpr bool kMins = C == Code::q4a;
};

// Geometry of one K block and the query rows scored against it.
struct KeyArgs {
  const uint8_t* block;
  int T;         // page tokens
  int d;         // head dim
  int group;     // channels per step
  size_t steps;  // offsets of the steps and mins (IntKeyBlock)
  size_t mins;
  size_t bytes;  // the block's bytes (for prefetching)
  IntQueryLayout ql;
  const uint8_t* qbuf;  // [rows][ql.row_bytes()]
};

#if HWY_TARGET == HWY_AVX3_DL
// sum_j q_j * code_j - bias * sum_j q_j for the 16 tokens at tb, group gi, R rows: VNNI.
template <Code C, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void GroupSums(const KeyArgs& a, const IntQueryRow* q, int tb, int gi,
                                      VF (&out)[R]) {
  using T = Traits<C>;
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_set1_epi32(-T::kVnniBias * q[r].sum[gi]);
  const int slabs = a.group / T::kLineChannels;
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  for (int s = 0; s < slabs; ++s) {
    const int slab = gi * slabs + s;
    const __m512i v = _mm512_loadu_si512(a.block + (static_cast<size_t>(slab) * a.T + tb) * 4);
    if constexpr (C == Code::q8) {
      const __m512i u = _mm512_xor_si512(v, _mm512_set1_epi8(static_cast<char>(0x80)));
      for (int r = 0; r < R; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, q[r].codes + 4 * slab, 4);
        dpbusd(acc[r], u, _mm512_set1_epi32(quad));
      }
    } else {
      const __m512i lo = _mm512_and_si512(v, low4);
      const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
      for (int r = 0; r < R; ++r) {
        int32_t q0, q1;
        __builtin_memcpy(&q0, q[r].codes + 8 * slab, 4);
        __builtin_memcpy(&q1, q[r].codes + 8 * slab + 4, 4);
        dpbusd(acc[r], lo, _mm512_set1_epi32(q0));
        dpbusd(acc[r], hi, _mm512_set1_epi32(q1));
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = VF{_mm512_cvtepi32_ps(acc[r])};
}
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
// The same integer sums for the 8 tokens at tb, 256-bit (int8_dot-inl.h): q8 codes are signed
// bytes (DotS8), 4-bit codes unsigned nibbles below 16 (DotU8).
template <Code C, int R, bool kVnni>
HWY_INLINE void GroupSums8(const KeyArgs& a, const IntQueryRow* q, int tb, int gi,
                           __m256i (&acc)[R]) {
  using T = Traits<C>;
  constexpr int kBias = C == Code::q8 ? kS8Bias<kVnni> : T::kBias;
  for (int r = 0; r < R; ++r) acc[r] = _mm256_set1_epi32(-kBias * q[r].sum[gi]);
  const int slabs = a.group / T::kLineChannels;
  const __m256i low4 = _mm256_set1_epi8(0x0f);
  for (int s = 0; s < slabs; ++s) {
    const int slab = gi * slabs + s;
    const __m256i v = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(a.block + (static_cast<size_t>(slab) * a.T + tb) * 4));
    if constexpr (C == Code::q8) {
      for (int r = 0; r < R; ++r) DotS8<kVnni>(acc[r], v, Broadcast4(q[r].codes + 4 * slab));
    } else {
      const __m256i lo = _mm256_and_si256(v, low4);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
      for (int r = 0; r < R; ++r) {
        DotU8<kVnni>(acc[r], lo, Broadcast4(q[r].codes + 8 * slab));
        DotU8<kVnni>(acc[r], hi, Broadcast4(q[r].codes + 8 * slab + 4));
      }
    }
  }
}

template <Code C, int R, bool kVnni>
HWY_INLINE void GroupSums(const KeyArgs& a, const IntQueryRow* q, int tb, int gi, VF (&out)[R]) {
  __m256i lo[R];
  GroupSums8<C, R, kVnni>(a, q, tb, gi, lo);
#if HWY_TARGET == HWY_AVX2
  for (int r = 0; r < R; ++r) out[r] = VF{_mm256_cvtepi32_ps(lo[r])};
#else  // 16 lanes: two halves of 8 tokens
  __m256i hi[R];
  GroupSums8<C, R, kVnni>(a, q, tb + 8, gi, hi);
  for (int r = 0; r < R; ++r) {
    out[r] = VF{_mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo[r]), hi[r], 1))};
  }
#endif
}
#else
// The same sums on any target: codes de-interleaved by LoadInterleaved4, widened to f32.
template <Code C, int R, bool kVnni>
HWY_INLINE void GroupSums(const KeyArgs& a, const IntQueryRow* q, int tb, int gi, VF (&out)[R]) {
  using T = Traits<C>;
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint8_t, DF> du8;
  const hn::Rebind<int8_t, DF> di8;
  for (int r = 0; r < R; ++r) out[r] = hn::Set(df, static_cast<float>(-T::kBias * q[r].sum[gi]));
  const int slabs = a.group / T::kLineChannels;
  for (int s = 0; s < slabs; ++s) {
    const int slab = gi * slabs + s;
    const uint8_t* p = a.block + (static_cast<size_t>(slab) * a.T + tb) * 4;
    VF ch[T::kLineChannels];
    if constexpr (C == Code::q8) {
      hn::Vec<decltype(di8)> c0, c1, c2, c3;
      hn::LoadInterleaved4(di8, reinterpret_cast<const int8_t*>(p), c0, c1, c2, c3);
      ch[0] = hn::ConvertTo(df, hn::PromoteTo(di, c0));
      ch[1] = hn::ConvertTo(df, hn::PromoteTo(di, c1));
      ch[2] = hn::ConvertTo(df, hn::PromoteTo(di, c2));
      ch[3] = hn::ConvertTo(df, hn::PromoteTo(di, c3));
    } else {
      hn::Vec<decltype(du8)> c[4];
      hn::LoadInterleaved4(du8, p, c[0], c[1], c[2], c[3]);
      const auto low4 = hn::Set(du8, uint8_t{0x0f});
      for (int i = 0; i < 4; ++i) {
        ch[i] = hn::ConvertTo(
            df, hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<DF>(), hn::And(c[i], low4))));
        ch[4 + i] = hn::ConvertTo(df, hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<DF>(),
                                                                    hn::ShiftRight<4>(c[i]))));
      }
    }
    for (int r = 0; r < R; ++r) {
      const float* qf = q[r].fcodes + slab * T::kLineChannels;
      for (int i = 0; i < T::kLineChannels; ++i)
        out[r] = hn::MulAdd(hn::Set(df, qf[i]), ch[i], out[r]);
    }
  }
}
#endif

// logits[r][tb .. tb + N) for R rows of one block.
template <Code C, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void ScoreTokens(const KeyArgs& a, const IntQueryRow* q, int tb,
                                        float* logits, size_t stride, LineSchedule& prefetch) {
  const DF df;
  VF acc[R];
  for (int r = 0; r < R; ++r) acc[r] = hn::Zero(df);
  for (int gi = 0; gi < a.d / a.group; ++gi) {
    VF sums[R];
    GroupSums<C, R, kVnni>(a, q, tb, gi, sums);
    const size_t at = 2 * (static_cast<size_t>(gi) * a.T + tb);
    const VF ks = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(a.block + a.steps + at));
    for (int r = 0; r < R; ++r) {
      acc[r] = hn::MulAdd(sums[r], hn::Mul(ks, hn::Set(df, q[r].scale[gi])), acc[r]);
    }
    if constexpr (Traits<C>::kMins) {
      const VF ms = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(a.block + a.mins + at));
      for (int r = 0; r < R; ++r) {
        acc[r] =
            hn::MulAdd(ms, hn::Set(df, q[r].scale[gi] * static_cast<float>(q[r].sum[gi])), acc[r]);
      }
    }
    prefetch.step();
  }
  for (int r = 0; r < R; ++r) hn::StoreU(acc[r], df, logits + r * stride + tb);
}

template <Code C, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void ScoreRows(const KeyArgs& a, int r0, float* logits, size_t stride,
                                      Prefetcher* pf) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  IntQueryRow q[R] = {};
  for (int r = 0; r < R; ++r) q[r] = IntQueryRow(a.ql, a.qbuf + (r0 + r) * a.ql.row_bytes());
  const int iters = a.T / N * (a.d / a.group);
  const uint8_t* lines[512];
  const int n_lines = pf ? pf->take_lines(a.bytes, lines, 512) : 0;
  LineSchedule prefetch(lines, n_lines, iters);
  for (int tb = 0; tb < a.T; tb += N) {
    ScoreTokens<C, R, kVnni>(a, q, tb, logits + r0 * stride, stride, prefetch);
  }
}

template <Code C, bool kVnni>
KVPACK_VNNI void ScoreInt(const BlockSet& b, const IntKeyBlock& g, const uint8_t* qbuf, int rows,
                          float* logits, size_t stride, Prefetcher& pf) {
  constexpr int kMaxRows = HWY_MAX_BYTES >= 64 ? 8 : 4;
  const IntQueryLayout ql{g.d, g.group};
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const KeyArgs a{b.at(i, h),   g.T,     g.d,
                      g.group,      g.steps, g.mins,
                      b.head_bytes, ql,      qbuf + static_cast<size_t>(h) * rows * ql.row_bytes()};
      float* out = logits + h * rows * stride + i * g.T;
      Prefetcher* first = &pf;
      int r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
        ScoreRows<C, kMaxRows, kVnni>(a, r, out, stride, first);
      }
      if (kMaxRows > 4 && r + 4 <= rows)
        ScoreRows<C, 4, kVnni>(a, r, out, stride, first), r += 4, first = nullptr;
      if (r + 2 <= rows) ScoreRows<C, 2, kVnni>(a, r, out, stride, first), r += 2, first = nullptr;
      if (r < rows) ScoreRows<C, 1, kVnni>(a, r, out, stride, first);
    }
  }
}

// avx_vnni: the AVX2 kernels may use AVX-VNNI (avx_vnni_allowed()); other targets ignore it.
template <Code C>
KVPACK_VNNI void ScoreIntOn(const BlockSet& b, const IntKeyBlock& g, const uint8_t* qbuf, int rows,
                            float* logits, size_t stride, Prefetcher& pf, bool avx_vnni) {
#if HWY_TARGET == HWY_AVX2
  if (avx_vnni) return ScoreInt<C, true>(b, g, qbuf, rows, logits, stride, pf);
#endif
  (void)avx_vnni;
  ScoreInt<C, false>(b, g, qbuf, rows, logits, stride, pf);
}

#define KVPACK_INT_SCORE(NAME, CODE)                                                         \
  KVPACK_VNNI void Score##NAME(const BlockSet& b, const IntKeyBlock& g, const uint8_t* qbuf, \
                               int rows, float* logits, size_t stride, Prefetcher& pf,       \
                               bool avx_vnni) {                                              \
    ScoreIntOn<CODE>(b, g, qbuf, rows, logits, stride, pf, avx_vnni);                        \
  }
KVPACK_INT_SCORE(Q8, Code::q8)
KVPACK_INT_SCORE(Q4, Code::q4)
KVPACK_INT_SCORE(Q4A, Code::q4a)
#undef KVPACK_INT_SCORE

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "base/simd_target.h"

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreQ8);
HWY_EXPORT(ScoreQ4);
HWY_EXPORT(ScoreQ4A);

namespace {

IntQueryLayout query_layout(const format::Codec& codec) {
  return IntQueryLayout{codec.head_dim(), codec.layout().group};
}

size_t int_query_bytes(const format::Codec& codec) {
  return query_layout(codec).row_bytes();
}

void int_prepare(const format::Codec& codec, int /*head*/, const float* q, int rows,
                 size_t q_stride, uint8_t* qbuf) {
  const IntQueryLayout l = query_layout(codec);
  for (int r = 0; r < rows; ++r) quantize_query(l, q + r * q_stride, qbuf + r * l.row_bytes());
}

IntKeyBlock block_of(const format::Codec& codec) {
  const format::BlockLayout& l = codec.layout();
  return {codec.page_tokens(), codec.head_dim(), l.group, l.steps, l.mins};
}

#define KVPACK_INT_ENTRY(NAME)                                                                    \
  void score_##NAME(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows, \
                    float* logits, size_t stride, Prefetcher& pf) {                               \
    HWY_DYNAMIC_DISPATCH(Score##NAME)                                                             \
    (b, block_of(codec), qbuf, rows, logits, stride, pf, avx_vnni_allowed());                     \
  }
KVPACK_INT_ENTRY(Q8)
KVPACK_INT_ENTRY(Q4)
KVPACK_INT_ENTRY(Q4A)
#undef KVPACK_INT_ENTRY

// query_group is the codec's step group (it depends on the head dim).
KKernel make_kernel(int group, void (*score)(const format::Codec&, const BlockSet&, const uint8_t*,
                                             int, float*, size_t, Prefetcher&)) {
  return KKernel{"int8-dot", 8, group, int_query_bytes, int_prepare, score};
}

}  // namespace

// Integer codes with a step (and min) per group of 16 or 32 channels of a token, interleaved
// across tokens in key planes: 8-bit signed (q8), 4-bit with a bias of 8 (q4) or with mins (q4a).
const KKernel* int_k_kernel(const format::Codec& codec) {
  const format::BlockLayout& l = codec.layout();
  if (l.element != format::BlockLayout::Element::integer ||
      l.order != format::BlockLayout::Order::key_planes || l.per_channel) {
    return nullptr;
  }
  if (codec.page_tokens() % 16 != 0 || codec.head_dim() % 16 != 0 || l.group < 16) return nullptr;
  static const KKernel q8_16 = make_kernel(16, score_Q8), q8_32 = make_kernel(32, score_Q8);
  static const KKernel q4_16 = make_kernel(16, score_Q4), q4_32 = make_kernel(32, score_Q4);
  static const KKernel q4a_16 = make_kernel(16, score_Q4A), q4a_32 = make_kernel(32, score_Q4A);
  const bool g32 = l.group == 32;
  const bool mins = l.mins != format::BlockLayout::kAbsent;
  if (l.code_bits() == 8 && l.code_offset == 0 && !mins) return g32 ? &q8_32 : &q8_16;
  if (l.code_bits() == 4 && l.code_offset == 8 && !mins) return g32 ? &q4_32 : &q4_16;
  if (l.code_bits() == 4 && l.code_offset == 0 && mins) return g32 ? &q4a_32 : &q4a_16;
  return nullptr;
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
