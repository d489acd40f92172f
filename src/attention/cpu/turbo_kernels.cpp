// turbo4 K kernel. Keys (channel-interleaved 4-bit codes, docs/formats.md): the rotated query is
// rounded to int8 per group, the codes map to int8 centroids through a 16-entry table (PSHUFB),
// and per group of channels the integer dot products are summed exactly (VPDPBUSD on AVX-512
// VNNI; f32 sums of integers elsewhere); logit = norm * table scale * sum_g qscale_g * dot_g.
// turbo4 values are read by cpu/value_kernels.cpp.
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

#include "attention/cpu/vnni.h"
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
      dpbusd(acc[r], lo, _mm512_set1_epi32(q0));
      dpbusd(acc[r], hi, _mm512_set1_epi32(q1));
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

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <vector>

namespace kvpack::attention::detail {

HWY_EXPORT(ScoreTurbo4);

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

double turbo4_key_error(const format::Codec& codec) {
  return turbo4_table(codec.head_dim()).rel_error;
}

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

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
