// V kernels for integer codes in ggml's token-major layout (q8, q4, q4a; docs/formats.md):
// acc[r][j] += w[r][t] * (code_tj * step_tg + min_tg). Per block of N tokens the products
// w[r][t] * step[g][t] are formed as vectors (steps are f16[G][T]), then each token's codes are
// widened to f32 once and added into every row of the register tile with one FMA per vector.
// The q4a mins add w * min per group once per page.
#define HWY_WANT_AVX3_DL 1
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/int_value_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include "attention/cpu/float_load-inl.h"
#include "attention/kernels.h"

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;

enum class Code { q8, q4, q4a };

constexpr int kMaxRows = HWY_MAX_BYTES >= 64 ? 8 : 4;
constexpr int kAccRegs = HWY_MAX_BYTES >= 64 ? 16 : 8;
constexpr int kMaxGroups = 16;  // head dim <= 256 at 16 channels per group
constexpr int kMaxLanes = HWY_MAX_BYTES / 4;

struct ValueArgs {
  const uint8_t* block;
  int T;
  int d;
  int group;
  size_t bytes;
  size_t steps;  // byte offset of f16 steps[G][T]
  size_t mins;   // byte offset of f16 mins[G][T] (q4a)
};

// Channels [j, j + N) of token t as f32 grid values (code, minus 8 for q4). p = j % group, the
// position within the group (a compile-time constant in aligned tiles, so the nibble choice
// folds away).
template <Code C>
HWY_INLINE VF Values(const ValueArgs& a, int t, int j, int p) {
  const DF df;
  const hn::RebindToSigned<DF> di;
  if constexpr (C == Code::q8) {
    const hn::Rebind<int8_t, DF> d8;
    const int8_t* codes =
        reinterpret_cast<const int8_t*>(a.block) + static_cast<size_t>(t) * a.d + j;
    return hn::ConvertTo(df, hn::PromoteTo(di, hn::LoadU(d8, codes)));
  } else {
    // ggml nibble order within a group of 32: position p is byte p % 16, nibble p / 16.
    const hn::Rebind<uint8_t, DF> d8;
    const hn::RebindToUnsigned<DF> du;
    const uint8_t* bytes = a.block + static_cast<size_t>(t) * (a.d / 2) + (j - p) / 2 + p % 16;
    const auto wide = hn::BitCast(di, hn::PromoteTo(du, hn::LoadU(d8, bytes)));
    auto codes = p < 16 ? hn::And(wide, hn::Set(di, 0xf)) : hn::ShiftRight<4>(wide);
    if constexpr (C == Code::q4) codes = hn::Sub(codes, hn::Set(di, 8));  // integer, not FP
    return hn::ConvertTo(df, codes);
  }
}

// ws[r][g][i] = w[r][tb + i] * step[g][tb + i] for the N tokens at tb.
template <int R>
HWY_INLINE void WeightSteps(const ValueArgs& a, const float* w, size_t ws, int tb,
                            float (*out)[kMaxGroups][kMaxLanes]) {
  const DF df;
  for (int g = 0; g < a.d / a.group; ++g) {
    const VF s = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(
                                     a.block + a.steps + 2 * (size_t(g) * a.T + tb)));
    for (int r = 0; r < R; ++r)
      hn::StoreU(hn::Mul(hn::LoadU(df, w + r * ws + tb), s), df, out[r][g]);
  }
}

// G: channels per step group (16 or 32), a compile-time constant so that vectors of one group
// share one weight broadcast.
template <Code C, int R, int DC, int G, bool kAligned>
HWY_INLINE void AccTile(const ValueArgs& a, const float (*wsb)[kMaxGroups][kMaxLanes], int tb,
                        int j0, float* acc, LineSchedule* pf) {
  const DF df;
  constexpr int N = static_cast<int>(hn::MaxLanes(DF()));
  const int g0 = j0 / G;
  VF v[R][DC];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) v[r][c] = hn::LoadU(df, acc + r * a.d + j0 + c * N);
  }
  for (int i = 0; i < N; ++i) {
    VF x[DC];
    for (int c = 0; c < DC; ++c) {
      // Aligned tiles start on a group boundary: the position in the group is a constant.
      const int p = kAligned ? (c * N) % G : (j0 + c * N) % G;
      x[c] = Values<C>(a, tb + i, j0 + c * N, p);
    }
    for (int r = 0; r < R; ++r) {
      VF wv = hn::Set(df, wsb[r][g0][i]);
      for (int c = 0; c < DC; ++c) {
        if (c > 0 && (c * N) / G != ((c - 1) * N) / G)
          wv = hn::Set(df, wsb[r][g0 + (c * N) / G][i]);
        v[r][c] = hn::MulAdd(wv, x[c], v[r][c]);
      }
    }
    if (pf != nullptr) pf->step();
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < DC; ++c) hn::StoreU(v[r][c], df, acc + r * a.d + j0 + c * N);
  }
}

// acc[r][j] += sum_t w[r][t] * min[g(j)][t] (q4a).
template <int R>
HWY_INLINE void AddMins(const ValueArgs& a, const float* w, size_t ws, float* acc) {
  const DF df;
  const int N = static_cast<int>(hn::Lanes(df));
  for (int g = 0; g < a.d / a.group; ++g) {
    for (int r = 0; r < R; ++r) {
      VF sum = hn::Zero(df);
      for (int tb = 0; tb < a.T; tb += N) {
        const VF m = LoadAsFloat(df, reinterpret_cast<const hwy::float16_t*>(
                                         a.block + a.mins + 2 * (size_t(g) * a.T + tb)));
        sum = hn::MulAdd(hn::LoadU(df, w + r * ws + tb), m, sum);
      }
      const float add = hn::GetLane(hn::SumOfLanes(df, sum));
      for (int j = g * a.group; j < (g + 1) * a.group; ++j) acc[r * a.d + j] += add;
    }
  }
}

template <Code C, int R, int G>
HWY_INLINE void AccRowsG(const ValueArgs& a, const float* w, size_t ws, float* acc,
                         Prefetcher* pf) {
  constexpr int N = static_cast<int>(hn::MaxLanes(DF()));
  constexpr int DC = kAccRegs / R >= 8 ? 8 : kAccRegs / R;
  const uint8_t* lines[512];
  LineSchedule prefetch(lines, pf ? pf->take_lines(a.bytes, lines, 512) : 0, a.T);
  float wsb[R][kMaxGroups][kMaxLanes];
  for (int tb = 0; tb < a.T; tb += N) {
    WeightSteps<R>(a, w, ws, tb, wsb);
    LineSchedule* first = &prefetch;
    int j0 = 0;
    for (; j0 + DC * N <= a.d; j0 += DC * N, first = nullptr) {
      AccTile<C, R, DC, G, (DC * N) % G == 0>(a, wsb, tb, j0, acc, first);
    }
    for (; j0 < a.d; j0 += N, first = nullptr) {
      AccTile<C, R, 1, G, false>(a, wsb, tb, j0, acc, first);
    }
  }
  if constexpr (C == Code::q4a) AddMins<R>(a, w, ws, acc);
}

template <Code C, int R>
HWY_INLINE void AccRows(const ValueArgs& a, const float* w, size_t ws, float* acc, Prefetcher* pf) {
  if (a.group == 32) {
    AccRowsG<C, R, 32>(a, w, ws, acc, pf);
  } else {
    AccRowsG<C, R, 16>(a, w, ws, acc, pf);
  }
}

template <Code C>
void AccumulateInt(const BlockSet& b, int T, int d, int group, const float* w, size_t ws, int rows,
                   float* acc, Prefetcher& pf) {
  const size_t steps = static_cast<size_t>(T) * d * (C == Code::q8 ? 8 : 4) / 8;
  for (int i = 0; i < b.n_pages; ++i) {
    for (int h = 0; h < b.n_heads; ++h) {
      const ValueArgs a{b.at(i, h),
                        T,
                        d,
                        group,
                        b.head_bytes,
                        steps,
                        steps + 2 * static_cast<size_t>(T) * (d / group)};
      const float* wi = w + h * rows * ws + i * T;
      float* ah = acc + h * rows * d;
      Prefetcher* first = &pf;
      int r = 0;
      for (; r + kMaxRows <= rows; r += kMaxRows, first = nullptr) {
        AccRows<C, kMaxRows>(a, wi + r * ws, ws, ah + r * d, first);
      }
      if (kMaxRows > 4 && r + 4 <= rows) {
        AccRows<C, 4>(a, wi + r * ws, ws, ah + r * d, first);
        r += 4, first = nullptr;
      }
      if (r + 2 <= rows)
        AccRows<C, 2>(a, wi + r * ws, ws, ah + r * d, first), r += 2, first = nullptr;
      if (r < rows) AccRows<C, 1>(a, wi + r * ws, ws, ah + r * d, first);
    }
  }
}

#define KVPACK_INT_ACC(NAME, CODE)                                                             \
  void Accumulate##NAME(const BlockSet& b, int T, int d, int group, const float* w, size_t ws, \
                        int rows, float* acc, Prefetcher& pf) {                                \
    AccumulateInt<CODE>(b, T, d, group, w, ws, rows, acc, pf);                                 \
  }
KVPACK_INT_ACC(Q8, Code::q8)
KVPACK_INT_ACC(Q4, Code::q4)
KVPACK_INT_ACC(Q4A, Code::q4a)
#undef KVPACK_INT_ACC

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace kvpack::attention::detail {

HWY_EXPORT(AccumulateQ8);
HWY_EXPORT(AccumulateQ4);
HWY_EXPORT(AccumulateQ4A);

namespace {

#define KVPACK_INT_ENTRY(NAME)                                                                     \
  void accumulate_##NAME(const format::Codec& codec, const BlockSet& b, const float* w, size_t ws, \
                         int rows, float* acc, Prefetcher& pf) {                                   \
    HWY_DYNAMIC_DISPATCH(Accumulate##NAME)                                                         \
    (b, codec.page_tokens(), codec.head_dim(), format::group_size(codec.head_dim()), w, ws, rows,  \
     acc, pf);                                                                                     \
  }
KVPACK_INT_ENTRY(Q8)
KVPACK_INT_ENTRY(Q4)
KVPACK_INT_ENTRY(Q4A)
#undef KVPACK_INT_ENTRY

const VKernel kQ8{"q8 simd", accumulate_Q8};
const VKernel kQ4{"q4 simd", accumulate_Q4};
const VKernel kQ4A{"q4a simd", accumulate_Q4A};

}  // namespace

const VKernel* int_v_kernel(const format::Codec& codec) {
  const int d = codec.head_dim();
  const int group = format::group_size(d);
  if (codec.page_tokens() % 16 != 0 || d % 16 != 0 || d > 256 || group < 16) return nullptr;
  switch (codec.info().id) {
    case format::FormatId::q8:
      return &kQ8;
    case format::FormatId::q4:  // nibble order is per group of 32
      return group == 32 ? &kQ4 : nullptr;
    case format::FormatId::q4a:
      return group == 32 ? &kQ4A : nullptr;
    default:
      return nullptr;
  }
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
