// V kernels for integer and table codes in token quads (docs/formats.md): q8 (int8 codes) and
// q4, q4a, turbo4 (4-bit indices into a 16-entry table: q4 and q4a = index - 8, turbo4 =
// its centroids as an int8 table). The weights of each (query row, scale group, page) are
// rounded to integers (value_weights-inl.h), so a page adds c * sum_t u_t e_tj to channel j:
// exact integer sums, VPDPBUSD with 4 tokens per lane on AVX-512 VNNI (each 64-byte line of
// codes times a broadcast of 4 tokens' weights, no horizontal sums), int32 multiply-adds on
// other targets, then one f32 multiply-add per channel and page. q8 uses 16-bit weights (two
// passes) because its own error is small; the 4-bit formats 8-bit weights. The exact-weights
// variant keeps w * a in f32 and multiplies it in with FMAs (the f32 centroids for turbo4).
#include "base/hwy_config.h"  // first: the Highway targets every kernel is compiled for

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "attention/cpu/value_kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <type_traits>

#include "attention/cpu/value_chunk.h"
#include "attention/cpu/value_tiles_avx2-inl.h"
#include "attention/cpu/value_tiles_avx3dl-inl.h"
#include "attention/cpu/value_weights-inl.h"
#include "attention/kernels.h"
#include "attention/turbo_table.h"

#include "attention/cpu/vnni_target-inl.h"  // KVPACK_VNNI for this target

HWY_BEFORE_NAMESPACE();
namespace kvpack::attention::detail {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using DI = hn::RebindToSigned<DF>;
using VF = hn::Vec<DF>;

// acc[j .. j + N) += scale * sum (+ mins, when the format has them) for one row.
template <bool kMins = true>
HWY_INLINE void AddPage(float* acc, VF sum, float scale, float mins) {
  const DF df;
  VF base = hn::LoadU(df, acc);
  if constexpr (kMins) base = hn::Add(base, hn::Set(df, mins));
  hn::StoreU(hn::MulAdd(sum, hn::Set(df, scale), base), df, acc);
}

// ---- portable (and exact-weights) path: one vector of N channels at a time ----

// Elements of lanes `idx` (each < 16) in a 16-entry table, as int32 or f32 (TV).
template <class D, typename TV>
HWY_INLINE hn::Vec<D> Lookup16(D d, hn::Vec<hn::RebindToSigned<D>> idx, const TV* table) {
  const int N = static_cast<int>(hn::Lanes(d));
#if HWY_TARGET == HWY_SCALAR
  (void)N;
  return hn::Set(d, table[hn::GetLane(idx)]);
#else
  if (N >= 16) return hn::TableLookupLanes(hn::LoadU(d, table), hn::IndicesFromVec(d, idx));
  const hn::RebindToSigned<D> di;
  const auto lane = hn::And(idx, hn::Set(di, N - 1));
  auto out = hn::Zero(d);
  for (int k = 0; k < 16; k += N) {
    const auto sub = hn::TableLookupLanes(hn::LoadU(d, table + k), hn::IndicesFromVec(d, lane));
    out = hn::IfThenElse(hn::RebindMask(d, hn::Eq(hn::Sub(idx, lane), hn::Set(di, k))), sub, out);
  }
  return out;
#endif
}

// The 4 tokens of quad tq of a page's codes for channels [j, j + N): integer elements as int32
// lanes.
template <VCode C>
HWY_INLINE void QuadElements(const ValueChunk& b, const uint8_t* codes, int tq, int j,
                             hn::Vec<DI> (&e)[4]) {
  const DI di;
  if constexpr (C == VCode::q8) {
    const hn::Rebind<int8_t, DF> d8;
    hn::Vec<decltype(d8)> t0, t1, t2, t3;
    hn::LoadInterleaved4(
        d8, reinterpret_cast<const int8_t*>(codes) + (static_cast<size_t>(tq) * b.d + j) * 4, t0,
        t1, t2, t3);
    e[0] = hn::PromoteTo(di, t0), e[1] = hn::PromoteTo(di, t1);
    e[2] = hn::PromoteTo(di, t2), e[3] = hn::PromoteTo(di, t3);
  } else if constexpr (kTwoBit<C>) {
    // N <= 16 lanes stay within one 16-channel slot of the 64-channel block (and of the 1-bit
    // plane's 128-channel block).
    constexpr size_t kN = hn::MaxLanes(DF());
    static_assert(kN <= 16, "a vector spans at most one 16-channel slot");
    const hn::Rebind<uint8_t, DF> d8;
    const hn::RebindToUnsigned<DF> du;
    const int k = j % 64 / 16, l = j % 16;
    hn::Vec<decltype(d8)> t[4];
    hn::LoadInterleaved4(d8, codes + (static_cast<size_t>(tq) * (b.d / 4) + 16 * (j / 64) + l) * 4,
                         t[0], t[1], t[2], t[3]);
    hn::Vec<DI> hw[4];  // turbo3: the 1-bit plane's lanes, channel j + n's bit at hbit of lane n
    int hbit = k + 4 * ((j / 64) % 2);
    if constexpr (C == VCode::turbo3) {
      const uint8_t* high = codes + static_cast<size_t>(b.T) * b.d / 4 +
                            (static_cast<size_t>(tq) * (b.d / 8) + 16 * (j / 128)) * 4;
      hn::Vec<decltype(d8)> h[4];
      if (b.d - j / 128 * 128 > 64) {  // a 128-channel block: channel 16k + l at lane l, bit k
        hn::LoadInterleaved4(d8, high + l * 4, h[0], h[1], h[2], h[3]);
        for (int i = 0; i < 4; ++i) hw[i] = hn::BitCast(di, hn::PromoteTo(du, h[i]));
      } else {
        // The last block where d % 128 == 64: 64 channels in 8 lanes, channel 16k + l at lane
        // l % 8, bit 2k + l / 8.
        hbit = 2 * k + l / 8;
        if constexpr (kN <= 8) {  // lanes within one half of the slot
          hn::LoadInterleaved4(d8, high + l % 8 * 4, h[0], h[1], h[2], h[3]);
          for (int i = 0; i < 4; ++i) hw[i] = hn::BitCast(di, hn::PromoteTo(du, h[i]));
        } else {  // the whole slot (l = 0): the 8 lanes twice, the second time shifted by one
#if HWY_TARGET != HWY_SCALAR
          const hn::Half<decltype(d8)> d8h;
          const hn::Half<decltype(du)> duh;
          hn::Vec<decltype(d8h)> g[4];
          hn::LoadInterleaved4(d8h, high, g[0], g[1], g[2], g[3]);
          for (int i = 0; i < 4; ++i) {
            const auto lo = hn::PromoteTo(duh, g[i]);
            hw[i] = hn::BitCast(di, hn::Combine(du, hn::ShiftRight<1>(lo), lo));
          }
#endif
        }
      }
    }
    for (int i = 0; i < 4; ++i) {
      const auto wide = hn::BitCast(di, hn::PromoteTo(du, t[i]));
      auto x = hn::And(hn::ShiftRightSame(wide, 2 * k), hn::Set(di, 3));
      if constexpr (C == VCode::turbo3) {
        x = hn::Or(x, hn::ShiftLeft<2>(hn::And(hn::ShiftRightSame(hw[i], hbit), hn::Set(di, 1))));
      }
      e[i] = x;
    }
  } else {
    const hn::Rebind<uint8_t, DF> d8;
    const int p = j % 32;  // N <= 16 lanes stay within one nibble half of the block
    hn::Vec<decltype(d8)> t[4];
    hn::LoadInterleaved4(d8,
                         codes + (static_cast<size_t>(tq) * (b.d / 2) + 16 * (j / 32) + p % 16) * 4,
                         t[0], t[1], t[2], t[3]);
    for (int i = 0; i < 4; ++i) {
      const auto wide = hn::BitCast(di, hn::PromoteTo(hn::RebindToUnsigned<DF>(), t[i]));
      e[i] = p < 16 ? hn::And(wide, hn::Set(di, 0xf)) : hn::ShiftRight<4>(wide);
    }
  }
}

// Channels [j, j + N) for R rows over the block's tokens. kBits 0: exact f32 weights.
template <VCode C, int kBits, int R>
HWY_INLINE void PortableVector(const ValueChunk& b, int j, const ValueWeights& wt, float* acc,
                               size_t as) {
  const DF df;
  const DI di;
  const int g = GroupOf<C>(j);
  using Acc = std::conditional_t<kBits == 0, VF, hn::Vec<DI>>;
  Acc s[R];
  for (int r = 0; r < R; ++r) {
    if constexpr (kBits == 0) {
      s[r] = hn::Zero(df);
    } else {
      s[r] = hn::Zero(di);
    }
  }
  for (int q = 0; q < b.pages * b.T / 4; ++q) {
    hn::Vec<DI> e[4];
    const int page = q / (b.T / 4);
    QuadElements<C>(b, b.codes[page], q - page * (b.T / 4), j, e);
    for (int i = 0; i < 4; ++i) {
      const int t = 4 * q + i;
      if constexpr (kBits == 0) {
        VF x;
        if constexpr (C == VCode::q8) {
          x = hn::ConvertTo(df, e[i]);
        } else {
          x = Lookup16(df, e[i], b.ftable);
        }
        for (int r = 0; r < R; ++r) s[r] = hn::MulAdd(hn::Set(df, wt.exact[r][g][t]), x, s[r]);
      } else {
        const auto x = C == VCode::q8 ? e[i] : Lookup16(di, e[i], b.itable);
        for (int r = 0; r < R; ++r) {
          const int u = kBits == 16   ? wt.hi[r][g][t] * 256 + wt.lo[r][g][t]
                        : kBits == 15 ? wt.w16[r][g][t]
                                      : wt.hi[r][g][t];
          s[r] = hn::Add(s[r], hn::Mul(x, hn::Set(di, u)));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    if constexpr (kBits == 0) {
      AddPage(acc + r * as + j, s[r], b.post, wt.mins[r][g]);
    } else {
      AddPage(acc + r * as + j, hn::ConvertTo(df, s[r]), wt.scale[r][g] * b.post, wt.mins[r][g]);
    }
  }
}

// Integer weight bits of this target's tiles (value_tiles_*-inl.h); the portable path reads
// any of them.
template <VCode C>
constexpr int kIntWeightBits =
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
    kAvx2WeightBits<C>;
#else
    C == VCode::q8 ? 16 : 8;
#endif

// All channels of one head's chunk for R rows (weights prepared); the first row block issues
// the blocks' prefetches (pf non-null).
template <VCode C, int kBits, int R, bool kVnni>
KVPACK_VNNI HWY_INLINE void RowBlock(const ValueChunk& b, const ValueWeights& wt, float* acc,
                                     size_t as, Prefetcher* pf, size_t block_bytes) {
#if HWY_TARGET == HWY_AVX3_DL
  if constexpr (kBits != 0) {
    if constexpr (C == VCode::q8) {
      TilePrefetch prefetch(pf, block_bytes, b.d / 32);
      for (int j0 = 0; j0 < b.d; j0 += 32) {
        prefetch.before_tile();
        Q8Group<R, kBits == 16 ? 2 : 1>(b, j0, wt, acc, as);
      }
    } else if constexpr (kTwoBit<C>) {
      TilePrefetch prefetch(pf, block_bytes, b.d / 64);
      for (int j0 = 0; j0 < b.d; j0 += 64) {
        prefetch.before_tile();
        if constexpr (C == VCode::turbo3) {
          if (j0 % 128 == 0 && j0 + 64 == b.d) {  // its own 64-channel block of the 1-bit plane
            PlaneTile<C, R, true>(b, j0, wt, acc, as);
            continue;
          }
        }
        PlaneTile<C, R>(b, j0, wt, acc, as);
      }
    } else {
      // Two lines (64 channels) per tile: 16 independent accumulators for 4 rows (8 leave the
      // loop waiting on VPDPBUSD's latency) and one weight broadcast per line pair (turbo4).
      TilePrefetch prefetch(pf, block_bytes, (b.d + 63) / 64);
      int j0 = 0;
      for (; j0 + 64 <= b.d; j0 += 64) {
        prefetch.before_tile();
        NibbleTile<C, R, 2>(b, j0, wt, acc, as);
      }
      if (j0 < b.d) {
        prefetch.before_tile();
        NibbleTile<C, R, 1>(b, j0, wt, acc, as);
      }
    }
    return;
  }
#elif HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
  if constexpr (kBits != 0) {
    Avx2RowBlock<C, R, kVnni>(b, wt, acc, as, pf, block_bytes);
    return;
  }
#endif
  const int N = static_cast<int>(hn::Lanes(DF()));
  TilePrefetch prefetch(pf, block_bytes, b.d / N);
  for (int j = 0; j < b.d; j += N) {
    prefetch.before_tile();
    PortableVector<C, kBits, R>(b, j, wt, acc, as);
  }
}

// The tables of a 4-bit format: q4 index - 8, q4a index - 8 for the integer weights (the 8
// steps go to the mins term, value_weights-inl.h) and the index for exact ones, turbo its (int8
// and f32) centroids.
struct ValueTables {
  int8_t i8[16];
  int32_t i32[16];
  float f32[16];
  float post_int = 1.0f;  // page-sum factor of the integer variants
};

template <VCode C>
HWY_INLINE ValueTables TablesOf(int d) {
  ValueTables t;
  constexpr int kBitsOf = C == VCode::turbo2 ? 2 : C == VCode::turbo3 ? 3 : 4;
  const TurboTable* turbo = kTurbo<C> ? &turbo_table(d, kBitsOf) : nullptr;
  for (int i = 0; i < 16; ++i) {
    const int k = C == VCode::q4 || C == VCode::q4a ? i - 8 : turbo ? turbo->codes[i] : 0;
    t.i8[i] = static_cast<int8_t>(k);
    t.i32[i] = k;
    t.f32[i] = turbo ? turbo->centroids[i] : static_cast<float>(C == VCode::q4a ? i : k);
  }
  if (turbo) t.post_int = turbo->scale;
  return t;
}

// Page by page (memory order: a page's heads are contiguous in its slice; reading a chunk head
// by head instead measured 10-25% slower end to end), per head: the page's weights, then all
// channels per block of 4 rows. ValueChunk and the weights take several pages so that the
// per-page work could be shared over a chunk; here each holds one page.
template <VCode C, int kBits, bool kVnni>
KVPACK_VNNI void AccumulateValues(const BlockSet& bs, int T, int d, const ValueOffsets& o,
                                  const float* w, size_t ws, int rows, float* acc, Prefetcher& pf) {
  const ValueTables tables = TablesOf<C>(d);
  const int G = kTurbo<C> ? 1 : d / 32;
  ValueWeights wt;
  TileLines lines[kValueGroups * 32 / 8];
#if HWY_TARGET == HWY_AVX2 || HWY_TARGET == HWY_AVX3
  if constexpr (kBits != 0) FillTileLines<C>(d, T, lines);  // only the AVX2 tiles read them
#endif
  ValueChunk b{
      {}, 1, T, d, tables.i8, tables.i32, tables.f32, kBits == 0 ? 1.0f : tables.post_int, lines};
  ValueUnits units{{}, {}, 1, G, T};
  for (int i = 0; i < bs.n_pages; ++i) {
    for (int h = 0; h < bs.n_heads; ++h) {
      const uint8_t* block = bs.at(i, h);
      b.codes[0] = block + o.codes;
      units.units[0] = reinterpret_cast<const hwy::float16_t*>(block + o.units);
      units.mins[0] = o.mins == ValueOffsets::kNone
                          ? nullptr
                          : reinterpret_cast<const hwy::float16_t*>(block + o.mins);
      PrepareValueUnits<kBits>(units, wt);
      for (int r0 = 0; r0 < rows; r0 += kValueRows) {
        const int R = std::min(kValueRows, rows - r0);
        const size_t row = static_cast<size_t>(h) * rows + r0;
        PrepareValueRows<kBits>(units, w + row * ws + i * T, ws, R, wt);
        float* a = acc + row * d;
        Prefetcher* first = r0 == 0 ? &pf : nullptr;
        if (R == 4) RowBlock<C, kBits, 4, kVnni>(b, wt, a, d, first, bs.head_bytes);
        if (R == 3) RowBlock<C, kBits, 3, kVnni>(b, wt, a, d, first, bs.head_bytes);
        if (R == 2) RowBlock<C, kBits, 2, kVnni>(b, wt, a, d, first, bs.head_bytes);
        if (R == 1) RowBlock<C, kBits, 1, kVnni>(b, wt, a, d, first, bs.head_bytes);
      }
    }
  }
}

// kBits: this target's integer weights, or 0 (exact f32 weights). avx_vnni: the AVX2 tiles may
// use AVX-VNNI (avx_vnni_allowed()); other targets ignore it.
template <VCode C, bool kExact>
KVPACK_VNNI void AccumulateOn(const BlockSet& bs, int T, int d, const ValueOffsets& o,
                              const float* w, size_t ws, int rows, float* acc, Prefetcher& pf,
                              bool avx_vnni) {
  constexpr int kBits = kExact ? 0 : kIntWeightBits<C>;
#if HWY_TARGET == HWY_AVX2
  if (avx_vnni) return AccumulateValues<C, kBits, true>(bs, T, d, o, w, ws, rows, acc, pf);
#endif
  (void)avx_vnni;
  AccumulateValues<C, kBits, false>(bs, T, d, o, w, ws, rows, acc, pf);
}

#define KVPACK_VALUE_KERNEL(NAME, CODE, EXACT)                                               \
  KVPACK_VNNI void Accumulate##NAME(const BlockSet& bs, int T, int d, const ValueOffsets& o, \
                                    const float* w, size_t ws, int rows, float* acc,         \
                                    Prefetcher& pf, bool avx_vnni) {                         \
    AccumulateOn<CODE, EXACT>(bs, T, d, o, w, ws, rows, acc, pf, avx_vnni);                  \
  }
KVPACK_VALUE_KERNEL(Q8, VCode::q8, false)
KVPACK_VALUE_KERNEL(Q8Exact, VCode::q8, true)
KVPACK_VALUE_KERNEL(Q4, VCode::q4, false)
KVPACK_VALUE_KERNEL(Q4Exact, VCode::q4, true)
KVPACK_VALUE_KERNEL(Q4A, VCode::q4a, false)
KVPACK_VALUE_KERNEL(Q4AExact, VCode::q4a, true)
KVPACK_VALUE_KERNEL(Turbo2, VCode::turbo2, false)
KVPACK_VALUE_KERNEL(Turbo2Exact, VCode::turbo2, true)
KVPACK_VALUE_KERNEL(Turbo3, VCode::turbo3, false)
KVPACK_VALUE_KERNEL(Turbo3Exact, VCode::turbo3, true)
KVPACK_VALUE_KERNEL(Turbo4, VCode::turbo4, false)
KVPACK_VALUE_KERNEL(Turbo4Exact, VCode::turbo4, true)

// The integer weight bits of format `code` (a VCode) on this target.
int IntWeightBits(int code) {
  switch (static_cast<VCode>(code)) {
    case VCode::q8:
      return kIntWeightBits<VCode::q8>;
    case VCode::q4:
    case VCode::q4a:
      return kIntWeightBits<VCode::q4>;
    default:
      return kIntWeightBits<VCode::turbo4>;
  }
}
#undef KVPACK_VALUE_KERNEL

}  // namespace HWY_NAMESPACE
}  // namespace kvpack::attention::detail
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include "base/simd_target.h"

namespace kvpack::attention::detail {

HWY_EXPORT(AccumulateQ8);
HWY_EXPORT(AccumulateQ8Exact);
HWY_EXPORT(AccumulateQ4);
HWY_EXPORT(AccumulateQ4Exact);
HWY_EXPORT(AccumulateQ4A);
HWY_EXPORT(AccumulateQ4AExact);
HWY_EXPORT(AccumulateTurbo2);
HWY_EXPORT(AccumulateTurbo2Exact);
HWY_EXPORT(AccumulateTurbo3);
HWY_EXPORT(AccumulateTurbo3Exact);
HWY_EXPORT(AccumulateTurbo4);
HWY_EXPORT(AccumulateTurbo4Exact);
HWY_EXPORT(IntWeightBits);

namespace {

using format::BlockLayout;

ValueOffsets offsets_of(const format::Codec& codec) {
  const BlockLayout& l = codec.layout();
  const bool steps = l.element == BlockLayout::Element::integer;
  return {l.codes, steps ? l.steps : l.norms,
          l.mins == BlockLayout::kAbsent ? ValueOffsets::kNone : l.mins};
}

#define KVPACK_VALUE_ENTRY(NAME)                                                         \
  void accumulate_##NAME(const format::Codec& codec, const BlockSet& bs, const float* w, \
                         size_t ws, int rows, float* acc, Prefetcher& pf) {              \
    HWY_DYNAMIC_DISPATCH(Accumulate##NAME)                                               \
    (bs, codec.page_tokens(), codec.head_dim(), offsets_of(codec), w, ws, rows, acc, pf, \
     avx_vnni_allowed());                                                                \
  }
KVPACK_VALUE_ENTRY(Q8)
KVPACK_VALUE_ENTRY(Q8Exact)
KVPACK_VALUE_ENTRY(Q4)
KVPACK_VALUE_ENTRY(Q4Exact)
KVPACK_VALUE_ENTRY(Q4A)
KVPACK_VALUE_ENTRY(Q4AExact)
KVPACK_VALUE_ENTRY(Turbo2)
KVPACK_VALUE_ENTRY(Turbo2Exact)
KVPACK_VALUE_ENTRY(Turbo3)
KVPACK_VALUE_ENTRY(Turbo3Exact)
KVPACK_VALUE_ENTRY(Turbo4)
KVPACK_VALUE_ENTRY(Turbo4Exact)
#undef KVPACK_VALUE_ENTRY

double turbo_value_error(const format::Codec& codec) {
  return turbo_table(codec.head_dim(), codec.layout().codebook_bits).rel_error;
}

int q8_bits() {
  return HWY_DYNAMIC_DISPATCH(IntWeightBits)(static_cast<int>(VCode::q8));
}
int q4_bits() {
  return HWY_DYNAMIC_DISPATCH(IntWeightBits)(static_cast<int>(VCode::q4));
}
int turbo_bits() {
  return HWY_DYNAMIC_DISPATCH(IntWeightBits)(static_cast<int>(VCode::turbo4));
}

const VKernel kQ8{"int-weights", accumulate_Q8, q8_bits};
const VKernel kQ8Exact{"f32-weights", accumulate_Q8Exact};
const VKernel kQ4{"int-weights", accumulate_Q4, q4_bits};
const VKernel kQ4Exact{"f32-weights", accumulate_Q4Exact};
const VKernel kQ4A{"int-weights", accumulate_Q4A, q4_bits};
const VKernel kQ4AExact{"f32-weights", accumulate_Q4AExact};
const VKernel kTurbo2{"int-weights", accumulate_Turbo2, turbo_bits, turbo_value_error};
const VKernel kTurbo2Exact{"f32-weights", accumulate_Turbo2Exact};
const VKernel kTurbo3{"int-weights", accumulate_Turbo3, turbo_bits, turbo_value_error};
const VKernel kTurbo3Exact{"f32-weights", accumulate_Turbo3Exact};
const VKernel kTurbo4{"int-weights", accumulate_Turbo4, turbo_bits, turbo_value_error};
const VKernel kTurbo4Exact{"f32-weights", accumulate_Turbo4Exact};

}  // namespace

// Value planes of integer codes with a step per group of 32 channels of a token (8-bit: q8;
// 4-bit with a bias of 8: q4; with mins: q4a) or of centroid codes with a norm per token (4-bit,
// 2-bit, 2 + 1-bit planes).
const VKernel* value_kernel(const format::Codec& codec, bool exact_weights) {
  const BlockLayout& l = codec.layout();
  const int d = codec.head_dim(), T = codec.page_tokens();
  if (l.order != BlockLayout::Order::value_planes || l.per_channel) return nullptr;
  if (T % 16 != 0 || T > 256 || d % 32 != 0 || d > 256) return nullptr;
  const auto pick = [exact_weights](const VKernel& integer, const VKernel& exact) {
    return exact_weights ? &exact : &integer;
  };
  if (l.element == BlockLayout::Element::integer && l.group == 32) {
    const bool mins = l.mins != BlockLayout::kAbsent;
    if (l.code_bits() == 8 && l.code_offset == 0 && !mins) return pick(kQ8, kQ8Exact);
    if (l.code_bits() == 4 && l.code_offset == 8 && !mins) return pick(kQ4, kQ4Exact);
    if (l.code_bits() == 4 && l.code_offset == 0 && mins) return pick(kQ4A, kQ4AExact);
    return nullptr;
  }
  if (l.element != BlockLayout::Element::centroid || l.gammas != BlockLayout::kAbsent) {
    return nullptr;
  }
  if (l.planes[0] == 4 && l.planes[1] == 0) return pick(kTurbo4, kTurbo4Exact);
  // The 2-bit planes are read in whole 64-channel lines, and turbo3's 1-bit plane in blocks of
  // 128 channels (two lines each) or, where d % 128 == 64, a last block of one.
  if (d % 64 != 0 || l.planes[0] != 2) return nullptr;
  if (l.planes[1] == 0) return pick(kTurbo2, kTurbo2Exact);
  if (l.planes[1] == 1) return pick(kTurbo3, kTurbo3Exact);
  return nullptr;
}

}  // namespace kvpack::attention::detail
#endif  // HWY_ONCE
