// K kernel of the TurboQuant formats (turbo2, turbo3, turbo4, turbo3_qjl, turbo4_qjl). Codes sit
// in bit planes across tokens (docs/formats.md): per 64-byte line, 16 tokens x one 4-channel
// quad per value position. The rotated query is rounded to int8 with one scale per row (its
// coordinates are spread evenly by the rotation), the codes become int8 centroids through a
// 16-entry table (PSHUFB; 3-bit codes join a 2-bit and a 1-bit plane first), and the integer dot
// products over all channels are summed exactly (VPDPBUSD on AVX-512 VNNI; f32 sums of integers
// below 2^24 elsewhere): logit = norm * table scale * query scale * dot. The QJL formats add the
// sign plane's dot with the int8-rounded S q, sum_j z_j (2 b_j - 1) = 2 sum_j z_j b_j - sum_j z_j,
// times gamma sqrt(pi/2) / d.
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/turbo_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#include "attention/cpu/int8_dot-inl.h"
#include "attention/int_query.h"
#include "attention/kernels.h"
#include "attention/turbo_table.h"

#include "attention/cpu/vnni_target-inl.h"  // KVPACK_VNNI for this target

#ifndef KVPACK_ATTENTION_TURBO_KEY_BLOCK_
#define KVPACK_ATTENTION_TURBO_KEY_BLOCK_
namespace kvpack::attention::detail {
// The geometry of one TurboQuant K block, from the codec's BlockLayout (offsets in bytes).
struct TurboKeyBlock {
  int T;          // page tokens
  int d;          // head dim
  int bits;       // codebook bits (the int8 table's)
  size_t codes;   // the first code plane
  size_t high;    // the 1-bit plane: turbo3's code bit 2 or the QJL signs
  size_t norms;   // f16 [T]
  size_t gammas;  // f16 [T] (QJL)
};
}  // namespace kvpack::attention::detail
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int kMaxRows = HWY_MAX_BYTES >= 64 ? 8 : 4;

// The code planes: 4-bit (t4; q4: code | sign << 3), 2-bit (t2; q3 with a 1-bit sign plane), or
// 2-bit low bits and a 1-bit plane of bit 2 (t3).
enum class TCode { t2, t3, t4, q3, q4 };

template <TCode C>
struct TTraits {
  static constexpr bool kQjl = C == TCode::q3 || C == TCode::q4;
  static constexpr bool kNibbles = C == TCode::t4 || C == TCode::q4;
  static constexpr bool kHighPlane = C == TCode::t3;  // 1-bit plane of code bit 2
  static constexpr bool kSignPlane = C == TCode::q3;  // 1-bit plane of signs
};

// One K block and the prepared rows scored against it. A prepared row is an IntQueryLayout row
// of Pi q (one group), followed for the QJL formats by one of S q.
struct KeyArgs {
  const uint8_t* block;
  int T;
  int d;
  size_t codes, high, norms, gammas;  // TurboKeyBlock's offsets
  const TurboTable* table;
  IntQueryLayout ql;
  size_t row_bytes;
  const uint8_t* qbuf;
  float qjl_scale;  // sqrt(pi/2) / d
};

struct Row {
  IntQueryRow mse;
  IntQueryRow sign;
};

#if HWY_TARGET == HWY_AVX3_DL
// 16 tokens from tb: integer dots of R rows with the codes (biased by 128 through the table, the
// bias taken off in the initial value) and, for QJL, with the sign bits.
template <TCode C, int R>
KVPACK_VNNI HWY_INLINE void Dots(const KeyArgs& a, const Row* q, int tb, __m512i (&dot)[R],
                                 __m512i (&sdot)[R]) {
  using Tr = TTraits<C>;
  const __m512i tab =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.table->biased)));
  const __m512i low4 = _mm512_set1_epi8(0x0f), low2 = _mm512_set1_epi8(0x03);
  const __m512i one = _mm512_set1_epi8(0x01), bit2 = _mm512_set1_epi8(0x04);
  // Two accumulators per row (even and odd code positions), summed at the end: one chain of
  // VPDPBUSD per row through all d channels waited on the instruction's latency (4 chains for a
  // GQA group of 4, where the two VNNI pipes need about 8 in flight).
  __m512i odd[R];
  for (int r = 0; r < R; ++r) {
    dot[r] = _mm512_set1_epi32(-128 * q[r].mse.sum[0]);
    odd[r] = _mm512_setzero_si512();
    sdot[r] = _mm512_setzero_si512();
  }
  const uint8_t* codes = a.block + a.codes;
  const size_t line = 4 * static_cast<size_t>(a.T);  // bytes of one plane line
  const auto quad = [&](const IntQueryRow& row, int c) {
    int32_t v;
    __builtin_memcpy(&v, row.codes + 4 * c, 4);
    return _mm512_set1_epi32(v);
  };
  if constexpr (Tr::kNibbles) {
    for (int o = 0; o < a.d / 8; ++o) {
      const __m512i v = _mm512_loadu_si512(codes + o * line + 4 * static_cast<size_t>(tb));
      const __m512i n[2] = {_mm512_and_si512(v, low4),
                            _mm512_and_si512(_mm512_srli_epi16(v, 4), low4)};
      for (int k = 0; k < 2; ++k) {
        const __m512i e = _mm512_shuffle_epi8(tab, n[k]);
        for (int r = 0; r < R; ++r) dpbusd(k ? odd[r] : dot[r], e, quad(q[r].mse, 2 * o + k));
        if constexpr (Tr::kQjl) {
          const __m512i s = _mm512_and_si512(_mm512_srli_epi16(n[k], 3), one);
          for (int r = 0; r < R; ++r) dpbusd(sdot[r], s, quad(q[r].sign, 2 * o + k));
        }
      }
    }
  } else {
    const uint8_t* high = a.block + a.high;  // t3 bit 2 / q3 signs
    for (int o = 0; o < a.d / 16; ++o) {
      const __m512i v = _mm512_loadu_si512(codes + o * line + 4 * static_cast<size_t>(tb));
      __m512i h = _mm512_setzero_si512();
      if constexpr (Tr::kHighPlane || Tr::kSignPlane) {
        h = _mm512_loadu_si512(high + (o / 2) * line + 4 * static_cast<size_t>(tb));
        if (o % 2) h = _mm512_srli_epi16(h, 4);  // this line's quads are bits 4..7
      }
      for (int k = 0; k < 4; ++k) {
        __m512i x = _mm512_and_si512(_mm512_srli_epi16(v, 2 * k), low2);
        if constexpr (Tr::kHighPlane) {
          // bit k of h becomes bit 2 of x
          const __m512i hk = k < 2 ? _mm512_slli_epi16(h, 2 - k) : _mm512_srli_epi16(h, k - 2);
          x = _mm512_or_si512(x, _mm512_and_si512(hk, bit2));
        }
        const __m512i e = _mm512_shuffle_epi8(tab, x);
        for (int r = 0; r < R; ++r) dpbusd(k % 2 ? odd[r] : dot[r], e, quad(q[r].mse, 4 * o + k));
        if constexpr (Tr::kSignPlane) {
          const __m512i s = _mm512_and_si512(_mm512_srli_epi16(h, k), one);
          for (int r = 0; r < R; ++r) dpbusd(sdot[r], s, quad(q[r].sign, 4 * o + k));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) dot[r] = _mm512_add_epi32(dot[r], odd[r]);
}

// turbo4 (4-bit codes, no sign plane): the same dots for the 32 tokens from tb, R <= 4 rows,
// each query broadcast serving both 16-token lines (half the broadcasts per dot product).
template <int R>
KVPACK_VNNI HWY_INLINE void NibbleDots2(const KeyArgs& a, const Row* q, int tb,
                                        __m512i (&dot)[2][R]) {
  const __m512i tab =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.table->biased)));
  __m512i odd[2][R];  // odd code positions: two chains per row and line
  for (int r = 0; r < R; ++r) {
    dot[0][r] = dot[1][r] = _mm512_set1_epi32(-128 * q[r].mse.sum[0]);
    odd[0][r] = odd[1][r] = _mm512_setzero_si512();
  }
  const uint8_t* codes = a.block + a.codes + 4 * static_cast<size_t>(tb);
  const size_t line = 4 * static_cast<size_t>(a.T);
  for (int o = 0; o < a.d / 8; ++o) {
    __m512i e[2][2];
    for (int l = 0; l < 2; ++l) {
      const __m512i v = _mm512_loadu_si512(codes + o * line + 64 * l);
      // VPERMB: the table repeats in every 16-byte lane, so index bits 4..5 need no masking.
      e[l][0] = _mm512_permutexvar_epi8(v, tab);
      e[l][1] = _mm512_permutexvar_epi8(_mm512_srli_epi16(v, 4), tab);
    }
    for (int k = 0; k < 2; ++k) {
      for (int r = 0; r < R; ++r) {
        int32_t quad;
        __builtin_memcpy(&quad, q[r].mse.codes + 4 * (2 * o + k), 4);
        const __m512i w = _mm512_set1_epi32(quad);
        dpbusd(k ? odd[0][r] : dot[0][r], e[0][k], w);
        dpbusd(k ? odd[1][r] : dot[1][r], e[1][k], w);
      }
    }
  }
  for (int l = 0; l < 2; ++l) {
    for (int r = 0; r < R; ++r) dot[l][r] = _mm512_add_epi32(dot[l][r], odd[l][r]);
  }
}
#endif

#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
// The same dots for the 8 tokens from tb, 256-bit (int8_dot-inl.h): the centroids through the
// signed int8 table (PSHUFB), DotS8 against the query; the sign bits (0/1) DotU8.
template <TCode C, int R, bool kVnni>
HWY_INLINE void Dots8(const KeyArgs& a, const Row* q, int tb, __m256i (&dot)[R],
                      __m256i (&sdot)[R]) {
  using Tr = TTraits<C>;
  const __m256i tab = _mm256_broadcastsi128_si256(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(a.table->codes)));
  const __m256i low4 = _mm256_set1_epi8(0x0f), low2 = _mm256_set1_epi8(0x03);
  const __m256i one = _mm256_set1_epi8(0x01), bit2 = _mm256_set1_epi8(0x04);
  for (int r = 0; r < R; ++r) {
    dot[r] = _mm256_set1_epi32(-kS8Bias<kVnni> * q[r].mse.sum[0]);
    sdot[r] = _mm256_setzero_si256();
  }
  const uint8_t* codes = a.block + a.codes;
  const size_t line = 4 * static_cast<size_t>(a.T);  // bytes of one plane line
  const auto load = [&](const uint8_t* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 4 * static_cast<size_t>(tb)));
  };
  if constexpr (Tr::kNibbles) {
    for (int o = 0; o < a.d / 8; ++o) {
      const __m256i v = load(codes + o * line);
      const __m256i n[2] = {_mm256_and_si256(v, low4),
                            _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
      for (int k = 0; k < 2; ++k) {
        const __m256i e = _mm256_shuffle_epi8(tab, n[k]);
        for (int r = 0; r < R; ++r) {
          DotS8<kVnni>(dot[r], e, Broadcast4(q[r].mse.codes + 4 * (2 * o + k)));
        }
        if constexpr (Tr::kQjl) {
          const __m256i sb = _mm256_and_si256(_mm256_srli_epi16(n[k], 3), one);
          for (int r = 0; r < R; ++r) {
            DotU8<kVnni>(sdot[r], sb, Broadcast4(q[r].sign.codes + 4 * (2 * o + k)));
          }
        }
      }
    }
    return;
  }
  const uint8_t* high = a.block + a.high;  // t3 bit 2 / q3 signs
  for (int o = 0; o < a.d / 16; ++o) {
    const __m256i v = load(codes + o * line);
    __m256i h = _mm256_setzero_si256();
    if constexpr (Tr::kHighPlane || Tr::kSignPlane) {
      h = load(high + (o / 2) * line);
      if (o % 2) h = _mm256_srli_epi16(h, 4);  // this line's quads are bits 4..7
    }
    for (int k = 0; k < 4; ++k) {
      __m256i x = _mm256_and_si256(_mm256_srl_epi16(v, _mm_cvtsi32_si128(2 * k)), low2);
      if constexpr (Tr::kHighPlane) {  // bit k of h becomes bit 2 of x
        const __m256i hk = k < 2 ? _mm256_sll_epi16(h, _mm_cvtsi32_si128(2 - k))
                                 : _mm256_srl_epi16(h, _mm_cvtsi32_si128(k - 2));
        x = _mm256_or_si256(x, _mm256_and_si256(hk, bit2));
      }
      const __m256i e = _mm256_shuffle_epi8(tab, x);
      for (int r = 0; r < R; ++r)
        DotS8<kVnni>(dot[r], e, Broadcast4(q[r].mse.codes + 4 * (4 * o + k)));
      if constexpr (Tr::kSignPlane) {
        const __m256i sb = _mm256_and_si256(_mm256_srl_epi16(h, _mm_cvtsi32_si128(k)), one);
        for (int r = 0; r < R; ++r) {
          DotU8<kVnni>(sdot[r], sb, Broadcast4(q[r].sign.codes + 4 * (4 * o + k)));
        }
      }
    }
  }
}

// Dots8 over the N tokens of one vector (AVX3: two halves), as f32.
template <TCode C, int R, bool kVnni>
HWY_INLINE void Avx2Dots(const KeyArgs& a, const Row* q, int tb, VF (&dot)[R], VF (&sdot)[R]) {
  __m256i d0[R], s0[R];
  Dots8<C, R, kVnni>(a, q, tb, d0, s0);
#if HWY_TARGET == HWY_AVX2
  for (int r = 0; r < R; ++r) {
    dot[r] = VF{_mm256_cvtepi32_ps(d0[r])};
    sdot[r] = VF{_mm256_cvtepi32_ps(s0[r])};
  }
#else
  __m256i d1[R], s1[R];
  Dots8<C, R, kVnni>(a, q, tb + 8, d1, s1);
  const auto join = [](__m256i lo, __m256i hi) {
    return VF{_mm512_cvtepi32_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1))};
  };
  for (int r = 0; r < R; ++r) {
    dot[r] = join(d0[r], d1[r]);
    sdot[r] = join(s0[r], s1[r]);
  }
#endif
}
#endif  // HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3

// The code (0..15, table index) and sign bit of channel j of token t: the planes read one value
// at a time (portable path).
template <TCode C>
HWY_INLINE void CodeAt(const KeyArgs& a, int t, int j, int* code, int* sign) {
  using Tr = TTraits<C>;
  const uint8_t* codes = a.block + a.codes;
  const size_t line = 4 * static_cast<size_t>(a.T);
  *sign = 0;
  if constexpr (Tr::kNibbles) {
    const int n = (codes[(j / 8) * line + 4 * t + j % 4] >> (j % 8 / 4 * 4)) & 15;
    *code = n;
    *sign = n >> 3;
  } else {
    const int lo = (codes[(j / 16) * line + 4 * t + j % 4] >> (j % 16 / 4 * 2)) & 3;
    const uint8_t* high = a.block + a.high;
    const int hb = (high[(j / 32) * line + 4 * t + j % 4] >> (j % 32 / 4)) & 1;
    *code = Tr::kHighPlane ? lo | hb << 2 : lo;
    if (Tr::kSignPlane) *sign = hb;
  }
}

// The same sums without VNNI: per token (lane), f32 sums of integer products (exact, < 2^24).
template <TCode C, int R>
HWY_INLINE void PortableDots(const KeyArgs& a, const Row* q, int tb, VF (&dot)[R], VF (&sdot)[R]) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  HWY_ALIGN float d0[R][HWY_MAX_BYTES / 4], s0[R][HWY_MAX_BYTES / 4];
  for (int i = 0; i < N; ++i) {
    for (int r = 0; r < R; ++r) d0[r][i] = s0[r][i] = 0.0f;
    for (int j = 0; j < a.d; ++j) {
      int code, sign;
      CodeAt<C>(a, tb + i, j, &code, &sign);
      for (int r = 0; r < R; ++r) {
        d0[r][i] += q[r].mse.fcodes[j] * static_cast<float>(a.table->codes[code]);
        if (TTraits<C>::kQjl) s0[r][i] += q[r].sign.fcodes[j] * static_cast<float>(sign);
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    dot[r] = hn::Load(df, d0[r]);
    sdot[r] = hn::Load(df, s0[r]);
  }
}

// Prefetch addresses handed to the first row tile of a block, issued a share per token block.
struct BlockLines {
  const uint8_t* const* lines = nullptr;
  int n = 0;
};

template <TCode C, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void ScoreRows(const KeyArgs& a, int r0, float* logits, size_t stride,
                                      BlockLines pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  Row q[R];
  for (int r = 0; r < R; ++r) {
    const uint8_t* row = a.qbuf + (r0 + r) * a.row_bytes;
    q[r].mse = IntQueryRow(a.ql, row);
    q[r].sign = IntQueryRow(a.ql, row + a.ql.row_bytes());
  }
  int issued = 0;
#if HWY_TARGET == HWY_AVX3_DL
  __m512i next[R];  // turbo4: the dots of the token line after a pair's first
  bool have_next = false;
#endif
  for (int tb = 0; tb < a.T; tb += N) {
    for (const int end = pf.n * (tb + N) / a.T; issued < end; ++issued) {
      __builtin_prefetch(pf.lines[issued], 0, 3);
    }
    VF dot[R], sdot[R];
#if HWY_TARGET == HWY_AVX3_DL
    __m512i di[R], si[R];
    if constexpr (C == TCode::t4 && R <= 4) {
      if (have_next) {  // the second line of the last pair
        for (int r = 0; r < R; ++r) di[r] = next[r], si[r] = _mm512_setzero_si512();
        have_next = false;
      } else if (tb + 2 * N <= a.T) {
        __m512i pair[2][R];
        NibbleDots2<R>(a, q, tb, pair);
        for (int r = 0; r < R; ++r) {
          di[r] = pair[0][r];
          si[r] = _mm512_setzero_si512();
          next[r] = pair[1][r];
        }
        have_next = true;
      } else {
        Dots<C, R>(a, q, tb, di, si);
      }
    } else {
      Dots<C, R>(a, q, tb, di, si);
    }
    for (int r = 0; r < R; ++r) {
      dot[r] = VF{_mm512_cvtepi32_ps(di[r])};
      sdot[r] = VF{_mm512_cvtepi32_ps(si[r])};
    }
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
    Avx2Dots<C, R, kVnni>(a, q, tb, dot, sdot);
#else
    PortableDots<C, R>(a, q, tb, dot, sdot);
#endif
    const auto* norms = reinterpret_cast<const hwy::float16_t*>(a.block + a.norms);
    const VF norm = LoadAsFloat(df, norms + tb);
    VF gamma = hn::Zero(df);
    if constexpr (TTraits<C>::kQjl) {
      gamma = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(a.block + a.gammas) + tb);
    }
    for (int r = 0; r < R; ++r) {
      VF out = hn::Mul(dot[r], hn::Mul(norm, hn::Set(df, a.table->scale * q[r].mse.scale[0])));
      if constexpr (TTraits<C>::kQjl) {
        const VF s =
            hn::Sub(hn::Add(sdot[r], sdot[r]), hn::Set(df, static_cast<float>(q[r].sign.sum[0])));
        out = hn::MulAdd(s, hn::Mul(gamma, hn::Set(df, a.qjl_scale * q[r].sign.scale[0])), out);
      }
      hn::StoreU(out, df, logits + (r0 + r) * stride + tb);
    }
  }
}

template <TCode C, bool kVnni>
KVPACK_VNNI void ScoreTurbo(const BlockSet& b, const TurboKeyBlock& g, const uint8_t* qbuf,
                            int rows, float* logits, size_t stride, Prefetcher& pf) {
  const int T = g.T, d = g.d;
  const TurboTable& table = turbo_table(d, g.bits);
  const IntQueryLayout ql{d, d};
  const size_t row_bytes = ql.row_bytes() * (TTraits<C>::kQjl ? 2 : 1);
  const float qjl = static_cast<float>(1.2533141373155001 / d);  // sqrt(pi/2) / d
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const KeyArgs a{b.at(i, h),
                      T,
                      d,
                      g.codes,
                      g.high,
                      g.norms,
                      g.gammas,
                      &table,
                      ql,
                      row_bytes,
                      qbuf + static_cast<size_t>(h) * rows * row_bytes,
                      qjl};
      // The block's prefetches, spread over the token blocks of its first row tile.
      const uint8_t* lines[512];
      BlockLines first{lines, pf.take_lines(b.head_bytes, lines, 512)};
      float* out = logits + h * rows * stride + i * T;
      int r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows, first = {}) {
        ScoreRows<C, kMaxRows, kVnni>(a, r, out, stride, first);
      }
      if (kMaxRows > 4 && r + 4 <= rows)
        ScoreRows<C, 4, kVnni>(a, r, out, stride, first), r += 4, first = {};
      if (r + 2 <= rows) ScoreRows<C, 2, kVnni>(a, r, out, stride, first), r += 2, first = {};
      if (r < rows) ScoreRows<C, 1, kVnni>(a, r, out, stride, first);
    }
  }
}

// avx_vnni: the AVX2 kernels may use AVX-VNNI (avx_vnni_allowed()); other targets ignore it.
template <TCode C>
KVPACK_VNNI void ScoreTurboOn(const BlockSet& b, const TurboKeyBlock& g, const uint8_t* qbuf,
                              int rows, float* logits, size_t stride, Prefetcher& pf,
                              bool avx_vnni) {
#if HWY_TARGET == HWY_AVX2
  if (avx_vnni) return ScoreTurbo<C, true>(b, g, qbuf, rows, logits, stride, pf);
#endif
  (void)avx_vnni;
  ScoreTurbo<C, false>(b, g, qbuf, rows, logits, stride, pf);
}

#define KVPACK_TURBO_SCORE(NAME, CODE)                                                         \
  KVPACK_VNNI void Score##NAME(const BlockSet& b, const TurboKeyBlock& g, const uint8_t* qbuf, \
                               int rows, float* logits, size_t stride, Prefetcher& pf,         \
                               bool avx_vnni) {                                                \
    ScoreTurboOn<CODE>(b, g, qbuf, rows, logits, stride, pf, avx_vnni);                        \
  }
KVPACK_TURBO_SCORE(Turbo2, TCode::t2)
KVPACK_TURBO_SCORE(Turbo3, TCode::t3)
KVPACK_TURBO_SCORE(Turbo4, TCode::t4)
KVPACK_TURBO_SCORE(Turbo3Qjl, TCode::q3)
KVPACK_TURBO_SCORE(Turbo4Qjl, TCode::q4)
#undef KVPACK_TURBO_SCORE

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

#include "base/simd_target.h"

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreTurbo2);
HWY_EXPORT(ScoreTurbo3);
HWY_EXPORT(ScoreTurbo4);
HWY_EXPORT(ScoreTurbo3Qjl);
HWY_EXPORT(ScoreTurbo4Qjl);

namespace {

using format::BlockLayout;

// QJL keys carry a second, sketched query row (S q) and a sign per coordinate.
bool qjl(const format::Codec& codec) {
  return codec.layout().gammas != BlockLayout::kAbsent;
}

size_t turbo_query_bytes(const format::Codec& codec) {
  const IntQueryLayout l{codec.head_dim(), codec.head_dim()};
  return l.row_bytes() * (qjl(codec) ? 2 : 1);
}

// Rotates each row with the codec (Pi q, and S q for QJL), then rounds each part to int8 with
// one scale per row.
void turbo_prepare(const format::Codec& codec, int head, const float* q, int rows, size_t q_stride,
                   uint8_t* qbuf) {
  const int d = codec.head_dim();
  const IntQueryLayout l{d, d};
  float prepared[512];  // [Pi q, S q]; turbo head dims are <= 256
  for (int r = 0; r < rows; ++r) {
    codec.prepare_query(head, q + r * q_stride, prepared);
    uint8_t* row = qbuf + r * turbo_query_bytes(codec);
    quantize_query(l, prepared, row);
    if (qjl(codec)) quantize_query(l, prepared + d, row + l.row_bytes());
  }
}

TurboKeyBlock block_of(const format::Codec& codec) {
  const BlockLayout& l = codec.layout();
  const size_t rows = (static_cast<size_t>(codec.page_tokens()) + 3) / 4 * 4;
  // The 1-bit plane: the QJL signs, or the second code plane (turbo3's bit 2) after the first.
  const size_t high =
      l.signs != BlockLayout::kAbsent
          ? l.signs
          : l.codes + rows * static_cast<size_t>(codec.head_dim()) * l.planes[0] / 8;
  const size_t gammas = l.gammas != BlockLayout::kAbsent ? l.gammas : 0;
  return {codec.page_tokens(), codec.head_dim(), l.codebook_bits, l.codes, high, l.norms, gammas};
}

#define KVPACK_TURBO_ENTRY(NAME)                                                                  \
  void score_##NAME(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows, \
                    float* logits, size_t stride, Prefetcher& pf) {                               \
    HWY_DYNAMIC_DISPATCH(Score##NAME)                                                             \
    (b, block_of(codec), qbuf, rows, logits, stride, pf, avx_vnni_allowed());                     \
  }
KVPACK_TURBO_ENTRY(Turbo2)
KVPACK_TURBO_ENTRY(Turbo3)
KVPACK_TURBO_ENTRY(Turbo4)
KVPACK_TURBO_ENTRY(Turbo3Qjl)
KVPACK_TURBO_ENTRY(Turbo4Qjl)
#undef KVPACK_TURBO_ENTRY

double turbo_key_error(const format::Codec& codec) {
  return turbo_table(codec.head_dim(), codec.layout().codebook_bits).rel_error;
}

}  // namespace

// Centroid codes in key planes: the planes (4; 2; 2 + 1) and the QJL sign plane or sign bit
// choose the kernel; head dims must fill whole plane lines (2-bit lines hold 16 channels, the
// 1-bit ones 32, the 4-bit ones 8).
const KKernel* turbo_k_kernel(const format::Codec& codec) {
  const BlockLayout& l = codec.layout();
  const int d = codec.head_dim();
  if (l.element != BlockLayout::Element::centroid || l.order != BlockLayout::Order::key_planes ||
      codec.page_tokens() % 16 != 0 || d > 256) {
    return nullptr;
  }
  // The query group is the whole head: the rotation spreads it evenly.
  static const auto make = [](void (*score)(const format::Codec&, const BlockSet&, const uint8_t*,
                                            int, float*, size_t, Prefetcher&)) {
    return KKernel{"int8-dot", 8, 0, turbo_query_bytes, turbo_prepare, score, turbo_key_error};
  };
  static const KKernel t2 = make(score_Turbo2), t3 = make(score_Turbo3), t4 = make(score_Turbo4);
  static const KKernel q3 = make(score_Turbo3Qjl), q4 = make(score_Turbo4Qjl);
  const bool signs = l.signs != BlockLayout::kAbsent;
  if (l.planes[0] == 4 && l.planes[1] == 0 && !signs) {
    if (d % 8 != 0) return nullptr;
    return l.sign_in_code ? &q4 : &t4;
  }
  if (l.planes[0] == 2 && l.planes[1] == 0) {
    if (signs) return d % 32 == 0 ? &q3 : nullptr;
    return d % 16 == 0 ? &t2 : nullptr;
  }
  if (l.planes[0] == 2 && l.planes[1] == 1 && !signs) return d % 32 == 0 ? &t3 : nullptr;
  return nullptr;
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
