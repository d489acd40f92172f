// turbo4 kernels. Keys (channel-interleaved 4-bit codes, docs/formats.md): the rotated query is
// rounded to int8 per group, the codes map to int8 centroids through a 16-entry table (PSHUFB),
// and per group of channels the integer dot products are summed exactly (VPDPBUSD on AVX-512
// VNNI; f32 sums of integers elsewhere); logit = norm * table scale * sum_g qscale_g * dot_g.
// Values (rows in q4's nibble order): each token's codes become f32 centroids by a lane table
// lookup and are added, times weight x norm, into the rotated-basis accumulator; finish() rotates
// back.
#define HWY_WANT_AVX3_DL 1
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/turbo_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#include "attention/int_query.h"
#include "attention/kernels.h"
#include "attention/turbo_table.h"

#undef KVPACK_VNNI
#if HWY_TARGET == HWY_AVX3_DL
#include <immintrin.h>
#define KVPACK_VNNI __attribute__((target(HWY_TARGET_STR ",avx512vnni")))
#else
#define KVPACK_VNNI
#endif

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

constexpr int kMaxRows = HWY_MAX_BYTES >= 64 ? 8 : 4;

struct KeyArgs {
  const uint8_t* block;
  int T;
  int d;
  int group;
  size_t bytes;
  const TurboTable* table;
  IntQueryLayout ql;
  const uint8_t* qbuf;
};

#if HWY_TARGET == HWY_AVX3_DL
template <int R>
KVPACK_VNNI HWY_INLINE void GroupDots(const KeyArgs& a, const IntQueryRow* q, int tb, int gi,
                                      VF (&out)[R]) {
  __m512i acc[R];
  for (int r = 0; r < R; ++r) acc[r] = _mm512_set1_epi32(-128 * q[r].sum[gi]);
  const __m512i low4 = _mm512_set1_epi8(0x0f);
  const __m512i tab =
      _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.table->biased)));
  const uint8_t* codes = a.block + 2 * static_cast<size_t>(a.T);
  for (int o = gi * a.group / 8; o < (gi + 1) * a.group / 8; ++o) {
    const __m512i v = _mm512_loadu_si512(codes + (static_cast<size_t>(o) * a.T + tb) * 4);
    const __m512i lo = _mm512_shuffle_epi8(tab, _mm512_and_si512(v, low4));
    const __m512i hi = _mm512_shuffle_epi8(tab, _mm512_and_si512(_mm512_srli_epi16(v, 4), low4));
    for (int r = 0; r < R; ++r) {
      int32_t q0, q1;
      __builtin_memcpy(&q0, q[r].codes + 8 * o, 4);
      __builtin_memcpy(&q1, q[r].codes + 8 * o + 4, 4);
      acc[r] = _mm512_dpbusd_epi32(acc[r], lo, _mm512_set1_epi32(q0));
      acc[r] = _mm512_dpbusd_epi32(acc[r], hi, _mm512_set1_epi32(q1));
    }
  }
  for (int r = 0; r < R; ++r) out[r] = VF{_mm512_cvtepi32_ps(acc[r])};
}
#elif HWY_TARGET == HWY_SCALAR
// One token per vector: plain loops over the same table.
template <int R>
HWY_INLINE void GroupDots(const KeyArgs& a, const IntQueryRow* q, int tb, int gi, VF (&out)[R]) {
  const uint8_t* codes = a.block + 2 * static_cast<size_t>(a.T);
  float dot[R] = {};
  for (int o = gi * a.group / 8; o < (gi + 1) * a.group / 8; ++o) {
    for (int i = 0; i < 4; ++i) {
      const uint8_t b = codes[(static_cast<size_t>(o) * a.T + tb) * 4 + i];
      for (int r = 0; r < R; ++r) {
        dot[r] += q[r].fcodes[8 * o + i] * a.table->codes[b & 0xf] +
                  q[r].fcodes[8 * o + 4 + i] * a.table->codes[b >> 4];
      }
    }
  }
  for (int r = 0; r < R; ++r) out[r] = hn::Set(DF(), dot[r]);
}
#else
template <int R>
HWY_INLINE void GroupDots(const KeyArgs& a, const IntQueryRow* q, int tb, int gi, VF (&out)[R]) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const hn::Rebind<uint8_t, DF> du8;
  const hn::Full128<int8_t> d16;
  const auto tab = hn::LoadU(d16, a.table->codes);
  const auto low4 = hn::Set(du8, uint8_t{0x0f});
  const uint8_t* codes = a.block + 2 * static_cast<size_t>(a.T);
  for (int r = 0; r < R; ++r) out[r] = hn::Zero(df);
  for (int o = gi * a.group / 8; o < (gi + 1) * a.group / 8; ++o) {
    hn::Vec<decltype(du8)> c[4];
    hn::LoadInterleaved4(du8, codes + (static_cast<size_t>(o) * a.T + tb) * 4, c[0], c[1], c[2],
                         c[3]);
    VF ch[8];
    for (int i = 0; i < 4; ++i) {
      const auto lo = hn::BitCast(hn::Rebind<int8_t, DF>(), hn::And(c[i], low4));
      const auto hi = hn::BitCast(hn::Rebind<int8_t, DF>(), hn::ShiftRight<4>(c[i]));
      ch[i] = hn::ConvertTo(df, hn::PromoteTo(di, hn::TableLookupBytes(tab, lo)));
      ch[4 + i] = hn::ConvertTo(df, hn::PromoteTo(di, hn::TableLookupBytes(tab, hi)));
    }
    for (int r = 0; r < R; ++r) {
      for (int i = 0; i < 8; ++i) {
        out[r] = hn::MulAdd(hn::Set(df, q[r].fcodes[8 * o + i]), ch[i], out[r]);
      }
    }
  }
}
#endif

template <int R>
KVPACK_VNNI HWY_INLINE void ScoreTokens(const KeyArgs& a, const IntQueryRow* q, int tb,
                                        float* logits, size_t stride, LineSchedule& prefetch) {
  const DF df;
  VF acc[R];
  for (int r = 0; r < R; ++r) acc[r] = hn::Zero(df);
  for (int gi = 0; gi < a.d / a.group; ++gi) {
    VF dots[R];
    GroupDots<R>(a, q, tb, gi, dots);
    for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(dots[r], hn::Set(df, q[r].scale[gi]), acc[r]);
    prefetch.step();
  }
  const VF norms = hn::Mul(LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(a.block) + tb),
                           hn::Set(df, a.table->scale));
  for (int r = 0; r < R; ++r) hn::StoreU(hn::Mul(acc[r], norms), df, logits + r * stride + tb);
}

template <int R>
KVPACK_VNNI HWY_INLINE void ScoreRows(const KeyArgs& a, int r0, float* logits, size_t stride,
                                      Prefetcher* pf) {
  const int N = static_cast<int>(hn::Lanes(DF()));
  IntQueryRow q[R];
  for (int r = 0; r < R; ++r) q[r] = IntQueryRow(a.ql, a.qbuf + (r0 + r) * a.ql.row_bytes());
  const uint8_t* lines[512];
  LineSchedule prefetch(lines, pf ? pf->take_lines(a.bytes, lines, 512) : 0,
                        a.T / N * (a.d / a.group));
  for (int tb = 0; tb < a.T; tb += N) {
    ScoreTokens<R>(a, q, tb, logits + r0 * stride, stride, prefetch);
  }
}

KVPACK_VNNI void ScoreTurbo4(const BlockSet& b, int T, int d, int group, const uint8_t* qbuf,
                             int rows, float* logits, size_t stride, Prefetcher& pf) {
  const TurboTable& table = turbo4_table(d);
  const IntQueryLayout ql{d, group};
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const KeyArgs a{
          b.at(i, h),   T,      d,  group,
          b.head_bytes, &table, ql, qbuf + static_cast<size_t>(h) * rows * ql.row_bytes()};
      float* out = logits + h * rows * stride + i * T;
      Prefetcher* first = &pf;
      int r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
        ScoreRows<kMaxRows>(a, r, out, stride, first);
      }
      if (kMaxRows > 4 && r + 4 <= rows)
        ScoreRows<4>(a, r, out, stride, first), r += 4, first = nullptr;
      if (r + 2 <= rows) ScoreRows<2>(a, r, out, stride, first), r += 2, first = nullptr;
      if (r < rows) ScoreRows<1>(a, r, out, stride, first);
    }
  }
}

// ---- values ----

constexpr int kAccRegs = HWY_MAX_BYTES >= 64 ? 16 : 8;
constexpr int kMaxPageTokens = 256;

#if HWY_TARGET != HWY_SCALAR
// f32 centroids of the codes in idx (each lane < 16).
HWY_INLINE VF Centroids(hn::Vec<hn::RebindToSigned<DF>> idx, const float* table) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  const int N = static_cast<int>(hn::Lanes(df));
  if (N >= 16) return hn::TableLookupLanes(hn::LoadU(df, table), hn::IndicesFromVec(df, idx));
  const auto lane = hn::And(idx, hn::Set(di, N - 1));
  VF out = hn::Zero(df);
  for (int k = 0; k < 16; k += N) {
    const VF sub = hn::TableLookupLanes(hn::LoadU(df, table + k), hn::IndicesFromVec(df, lane));
    out = hn::IfThenElse(hn::RebindMask(df, hn::Eq(hn::Sub(idx, lane), hn::Set(di, k))), sub, out);
  }
  return out;
}
#endif

// Centroids of codes [j, j + N) of a token row in q4's nibble order (groups of 32: byte i
// holds code i low and code i + 16 high; docs/formats.md).
#if HWY_TARGET == HWY_SCALAR
HWY_INLINE VF CentroidsAt(const uint8_t* row, int j, int p, const float* table) {
  const uint8_t b = row[j / 32 * 16 + j % 16];
  return hn::Set(DF(), table[p < 16 ? (b & 0xf) : (b >> 4)]);
}
#else
// p = j % 32 (a compile-time constant in aligned tiles).
HWY_INLINE VF CentroidsAt(const uint8_t* row, int j, int p, const float* table) {
  const hn::Rebind<uint8_t, DF> du8;
  const hn::RebindToUnsigned<DF> du;
  const hn::RebindToSigned<DF> di;
  const auto wide = hn::PromoteTo(du, hn::LoadU(du8, row + j / 32 * 16 + p % 16));
  const auto codes = p < 16 ? hn::And(wide, hn::Set(du, 0xfu)) : hn::ShiftRight<4>(wide);
  return Centroids(hn::BitCast(di, codes), table);
}
#endif

template <int R, int DC, bool kAligned>
HWY_INLINE void AccTile(const uint8_t* codes, int T, int d, int j0, const float* table,
                        const float (*wn)[kMaxPageTokens], float* acc, LineSchedule* pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  VF v[R][DC];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) v[r][c] = hn::LoadU(df, acc + r * d + j0 + c * N);
  }
  for (int t = 0; t < T; ++t) {
    VF x[DC];
    const uint8_t* row = codes + static_cast<size_t>(t) * (d / 2);
    for (int c = 0; c < DC; ++c) {
      x[c] = CentroidsAt(row, j0 + c * N, kAligned ? (c * N) % 32 : (j0 + c * N) % 32, table);
    }
    for (int r = 0; r < R; ++r) {
      const VF w = hn::Set(df, wn[r][t]);
      for (int c = 0; c < DC; ++c) v[r][c] = hn::MulAdd(w, x[c], v[r][c]);
    }
    if (pf != nullptr) pf->step();
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) hn::StoreU(v[r][c], df, acc + r * d + j0 + c * N);
  }
}

template <int R>
HWY_INLINE void AccRows(const uint8_t* block, int T, int d, size_t bytes, const float* table,
                        const float* w, size_t ws, float* acc, Prefetcher* pf) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  constexpr int DC = kAccRegs / R >= 8 ? 8 : kAccRegs / R;
  float wn[R][kMaxPageTokens];  // weight x stored norm per row and token
  for (int t = 0; t < T; t += N) {
    const VF norm = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(block) + t);
    for (int r = 0; r < R; ++r)
      hn::StoreU(hn::Mul(hn::LoadU(df, w + r * ws + t), norm), df, wn[r] + t);
  }
  const uint8_t* lines[512];
  LineSchedule prefetch(lines, pf ? pf->take_lines(bytes, lines, 512) : 0, T);
  const uint8_t* codes = block + 2 * static_cast<size_t>(T);
  LineSchedule* first = &prefetch;
  int j0 = 0;
  for (; j0 + DC * N <= d; j0 += DC * N, first = nullptr) {
    AccTile<R, DC, (DC * hn::MaxLanes(DF())) % 32 == 0>(codes, T, d, j0, table, wn, acc, first);
  }
  for (; j0 < d; j0 += N, first = nullptr) {
    AccTile<R, 1, false>(codes, T, d, j0, table, wn, acc, first);
  }
}

void AccumulateTurbo4(const BlockSet& b, int T, int d, const float* w, size_t ws, int rows,
                      float* acc, Prefetcher& pf) {
  const float* table = turbo4_table(d).centroids;
  const size_t bytes = b.head_bytes;
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const uint8_t* block = b.at(i, h);
      const float* wi = w + h * rows * ws + i * T;
      float* ah = acc + h * rows * d;
      Prefetcher* first = &pf;
      int r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
        AccRows<kMaxRows>(block, T, d, bytes, table, wi + r * ws, ws, ah + r * d, first);
      }
      if (kMaxRows > 4 && r + 4 <= rows) {
        AccRows<4>(block, T, d, bytes, table, wi + r * ws, ws, ah + r * d, first);
        r += 4, first = nullptr;
      }
      if (r + 2 <= rows) {
        AccRows<2>(block, T, d, bytes, table, wi + r * ws, ws, ah + r * d, first);
        r += 2, first = nullptr;
      }
      if (r < rows) AccRows<1>(block, T, d, bytes, table, wi + r * ws, ws, ah + r * d, first);
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreTurbo4);
HWY_EXPORT(AccumulateTurbo4);

namespace {

IntQueryLayout query_layout(const format::Codec& codec) {
  return IntQueryLayout{codec.head_dim(), format::group_size(codec.head_dim())};
}

size_t turbo_query_bytes(const format::Codec& codec) {
  return query_layout(codec).row_bytes();
}

// Rotates each row with the codec (Pi q), then rounds it to int8 per group.
void turbo_prepare(const format::Codec& codec, int head, const float* q, int rows, size_t q_stride,
                   uint8_t* qbuf) {
  const IntQueryLayout l = query_layout(codec);
  float rotated[256];  // turbo head dims are <= 256
  for (int r = 0; r < rows; ++r) {
    codec.prepare_query(head, q + r * q_stride, rotated);
    quantize_query(l, rotated, qbuf + r * l.row_bytes());
  }
}

void score_turbo4(const format::Codec& codec, const BlockSet& b, const uint8_t* qbuf, int rows,
                  float* logits, size_t stride, Prefetcher& pf) {
  HWY_DYNAMIC_DISPATCH(ScoreTurbo4)
  (b, codec.page_tokens(), codec.head_dim(), format::group_size(codec.head_dim()), qbuf, rows,
   logits, stride, pf);
}

void accumulate_turbo4(const format::Codec& codec, const BlockSet& b, const float* w, size_t ws,
                       int rows, float* acc, Prefetcher& pf) {
  HWY_DYNAMIC_DISPATCH(AccumulateTurbo4)
  (b, codec.page_tokens(), codec.head_dim(), w, ws, rows, acc, pf);
}

double turbo4_key_error(const format::Codec& codec) {
  return turbo4_table(codec.head_dim()).rel_error;
}

const VKernel kV{"turbo4 simd", accumulate_turbo4};

bool fast_geometry(const format::Codec& codec) {
  const int d = codec.head_dim();
  return codec.info().id == format::FormatId::turbo4 && codec.page_tokens() % 16 == 0 &&
         codec.page_tokens() <= 256 && d % 32 == 0 && d <= 256;
}

}  // namespace

const KKernel* turbo_k_kernel(const format::Codec& codec) {
  if (!fast_geometry(codec)) return nullptr;
  static const KKernel k32{"turbo4 int8-dot", 8, 32, turbo_query_bytes, turbo_prepare, score_turbo4,
                           turbo4_key_error};
  return &k32;  // d % 32 == 0: query groups of 32
}

const VKernel* turbo_v_kernel(const format::Codec& codec) {
  return fast_geometry(codec) ? &kV : nullptr;
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
